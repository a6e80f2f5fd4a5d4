# monitor-es: one image for every process (init, worker, pulse, run, simulate).
FROM python:3.11-slim

# hiredis and msgspec ship wheels for this platform: no compiler needed.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# constraints.txt: the versions the test suite last passed with.
COPY pyproject.toml README.md constraints.txt ./
COPY monitor_es ./monitor_es
COPY projections ./projections
# /archive belongs to the user, so a volume mounted there (trim --archive) is writable.
RUN pip install . -c constraints.txt && useradd --system --uid 10001 monitor-es \
    && install -d -o monitor-es /archive
USER monitor-es

ENTRYPOINT ["monitor-es"]
CMD ["--help"]
