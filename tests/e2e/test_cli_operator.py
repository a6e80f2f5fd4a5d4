"""What an operator gets from `monitor-es` when something is wrong: a one-line reason on
stderr, a documented exit code, no traceback, and nothing lost.

Every test runs the installed command in a subprocess, against private redis-servers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import redis
from redis_process import RedisProcess, free_port

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart.jsonl"
_SCRIPT = Path(sys.executable).with_name("monitor-es")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "monitor_es.cli"]
LONG_RUNNING = ("worker", "pulse", "run")
PASSWORD = "s3cret-pw"


def _env(**extra: str) -> dict[str, str]:
    # What a developer's shell may set for the commands must not reach the tests.
    ours = {"MONITOR_ES_REDIS_URL", "MONITOR_ES_PROJECT", "MONITOR_ES_ENVIRONMENT"}
    env = {k: v for k, v in os.environ.items() if k not in ours}
    return {**env, **extra}


def run_cli(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs `monitor-es ARGS` with no Redis URL from the environment (unless `env` has one)."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or _env(),
        check=False,
    )


def assert_one_line_failure(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """Exit `code`, no traceback, and a last stderr line that says `words`."""
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    for word in words:
        assert word in last, (word, done.stderr)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server with requirepass and an ACL user who may touch no key."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not on PATH")
    server = RedisProcess(binary, free_port(), tmp_path / "secured", {"appendonly": "no"})
    server.start()  # without a password: its start-up check pings without one
    admin = redis.Redis(port=server.port)
    admin.acl_setuser("nokeys", enabled=True, passwords=["+pw"], commands=["+@all"])
    admin.config_set("requirepass", PASSWORD)
    admin.close()
    try:
        yield server
    finally:
        server.stop()


def _url(server: RedisProcess, auth: str = "", db: int = 0) -> str:
    return f"redis://{auth}127.0.0.1:{server.port}/{db}"


# ------------------------------------------------------------------ the command line itself


def test_version_comes_from_the_package_metadata() -> None:
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"monitor-es {version('monitor-es')}"


@pytest.mark.parametrize("command", ["simulate", "init", "worker", "pulse", "run"])
def test_every_command_describes_itself_and_each_option(command: str) -> None:
    done = run_cli(command, "--help")
    assert done.returncode == 0
    text = done.stdout
    description = text.split("\n\n")[1]
    assert len(description.split()) >= 15, text  # a paragraph, not just the usage line
    lines = [*text.splitlines(), ""]
    for n, line in enumerate(lines):
        # An option with no help has nothing after its flags, on its line or the next.
        if line.startswith("  -"):
            assert "  " in line.strip() or lines[n + 1].startswith(" " * 20), (command, line)


def test_the_top_level_help_lists_the_commands_and_the_exit_codes() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    for word in ("simulate", "init", "worker", "pulse", "run", "Exit codes"):
        assert word in done.stdout
    bare = run_cli()
    assert bare.returncode == 2
    assert "usage: monitor-es" in bare.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["init", "--bogus"],
        ["worker", "--rate-limit", "3"],
        ["pulse", "extra"],
        ["frobnicate"],
    ],
)
def test_unknown_arguments_are_usage_errors(args: list[str]) -> None:
    done = run_cli(*args)
    assert_one_line_failure(done, 2, "error:")
    assert "unrecognized arguments" in done.stderr or "invalid choice" in done.stderr


@pytest.mark.parametrize(
    ("args", "option", "reason"),
    [
        (["init", "--partitions", "0"], "--partitions", "at least 1, got 0"),
        (["init", "--partitions", "-1"], "--partitions", "at least 1, got -1"),
        (["init", "--partitions", "abc"], "--partitions", "not a whole number: 'abc'"),
        (["run", "--partitions", "0"], "--partitions", "at least 1"),
        (["simulate", "x.jsonl", "--partitions", "abc"], "--partitions", "whole number"),
        (["init", "--rate-limit", "0"], "--rate-limit", "at least 1"),
        (["worker", "--lease-ttl-ms", "0"], "--lease-ttl-ms", "at least 100, got 0"),
        (["worker", "--lease-ttl-ms", "-5"], "--lease-ttl-ms", "at least 100"),
        (["worker", "--batch", "0"], "--batch", "at least 1, got 0"),
        (["worker", "--batch", "-1"], "--batch", "at least 1"),
        (["pulse", "--interval", "0"], "--interval", "at least 0.1 s"),
        (["pulse", "--interval", "-1"], "--interval", "at least 0.1 s"),
        (["pulse", "--interval", "nan"], "--interval", "at least 0.1 s"),
        (["pulse", "--interval", "inf"], "--interval", "at least 0.1 s"),
        (["run", "--interval", "abc"], "--interval", "not a number of seconds"),
    ],
)
def test_bad_numbers_are_usage_errors_naming_the_option(
    args: list[str], option: str, reason: str
) -> None:
    assert_one_line_failure(run_cli(*args), 2, f"argument {option}", reason)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis//x", "not a Redis URL"),
        ("http://x", "not a Redis URL"),
        ("redis://h:99999", "Port out of range"),
        ("redis://h:63x9", "Port could not be cast"),
        ("redis://h/abc", "database after the last / must be a number"),
        ("redis://h/0?sockettimeout=5", "unknown parameter sockettimeout"),
        ("redis://h/0?socket_timeout=soon", "socket_timeout"),
    ],
)
@pytest.mark.parametrize("command", ["init", "worker", "pulse", "run", "simulate"])
def test_a_malformed_redis_url_is_a_usage_error(command: str, url: str, reason: str) -> None:
    args = [command, "--redis-url", url]
    if command == "simulate":
        args.append(str(EXAMPLE))
    assert_one_line_failure(run_cli(*args, timeout=15), 2, "argument --redis-url", reason)


def test_a_malformed_url_in_the_environment_says_where_it_came_from() -> None:
    done = run_cli("worker", env=_env(MONITOR_ES_REDIS_URL="redis//oops"), timeout=15)
    assert_one_line_failure(done, 2, "not a Redis URL", "$MONITOR_ES_REDIS_URL")


@pytest.mark.parametrize("command", ["init", "worker", "pulse"])
def test_a_command_that_needs_a_shared_redis_refuses_to_run_without_one(command: str) -> None:
    # The embedded Redis ends with its process: `init` on it would "succeed" for nothing,
    # and a worker on it would ask for an init that cannot help.
    done = run_cli(command, timeout=15)
    assert_one_line_failure(done, 2, f"{command} needs a Redis", "--redis-url", "$MONITOR_ES")
    assert done.stdout == ""


def test_a_password_in_a_malformed_url_is_not_printed() -> None:
    done = run_cli("init", "--redis-url", f"redis://:{PASSWORD}@h/abc")
    assert_one_line_failure(done, 2, "must be a number", "redis://:***@h/abc")
    assert PASSWORD not in done.stderr


# ------------------------------------------------------------------ Redis unreachable


@pytest.mark.parametrize(
    "url", [f"redis://127.0.0.1:{free_port()}/0", "redis://no-such-host.invalid:6379/0"]
)
def test_an_unreachable_redis_fails_init_and_simulate_with_the_reason(url: str) -> None:
    assert_one_line_failure(run_cli("init", "--redis-url", url), 1, "cannot reach Redis", url)
    assert_one_line_failure(
        run_cli("simulate", str(EXAMPLE), "--redis-url", url), 2, "cannot reach Redis", url
    )


# ------------------------------------------------------------------ a Redis that says no


@pytest.mark.redis
def test_a_missing_or_wrong_password_is_named_and_never_printed(
    secured: RedisProcess,
) -> None:
    bare = _url(secured)
    for command in ("init", "worker", "pulse", "run"):
        # worker and pulse wait for an unreachable Redis, but not for a wrong password.
        done = run_cli(command, "--redis-url", bare, timeout=15)
        assert_one_line_failure(done, 1, "requires a password", "redis://[USER]:PASSWORD@")
    wrong = _url(secured, ":nope@")
    for command in ("init", "worker", "pulse", "run"):
        done = run_cli(command, "--redis-url", wrong, timeout=15)
        assert_one_line_failure(done, 1, "refused the user name or password", "redis://:***@")
        assert "nope" not in done.stderr
    done = run_cli("simulate", str(EXAMPLE), "--redis-url", wrong)
    assert_one_line_failure(done, 2, "refused the user name or password", "redis://:***@")
    assert "nope" not in done.stderr
    in_query = f"{bare}?password=nope"  # redis-py's other way to give it
    done = run_cli("init", "--redis-url", in_query)
    assert_one_line_failure(done, 1, "refused the user name or password", "?password=***")
    assert "nope" not in done.stderr
    # With the right password the banner still masks it.
    code, output = run_until(["run", "--redis-url", _url(secured, f":{PASSWORD}@")], "running")
    assert code == 0, output
    assert "running on redis://:***@127.0.0.1" in output
    assert PASSWORD not in output


@pytest.mark.redis
def test_an_acl_user_without_key_permissions_is_told_what_to_grant(
    secured: RedisProcess,
) -> None:
    url = _url(secured, "nokeys:pw@")
    for command in ("init", "worker", "pulse", "run"):
        done = run_cli(command, "--redis-url", url, timeout=15)
        assert_one_line_failure(done, 1, "ACL user", "~mes:*", "nokeys:***@")
    done = run_cli("simulate", str(EXAMPLE), "--redis-url", url)
    assert_one_line_failure(done, 2, "ACL user", "~mes:*")


@pytest.mark.redis
def test_a_cluster_url_of_a_single_redis_says_so(redis_server: str) -> None:
    url = redis_server.replace("redis://", "redis+cluster://")
    for command in ("init", "worker"):
        done = run_cli(command, "--redis-url", url, timeout=15)
        assert_one_line_failure(done, 1, "is not a cluster", "use a redis:// URL")


@pytest.mark.redis
def test_a_redis_out_of_memory_refuses_writes_and_keeps_the_deployment(
    real_client: redis.Redis, redis_server: str
) -> None:
    assert run_cli("init", "--redis-url", redis_server, "--partitions", "2").returncode == 0
    before = real_client.hgetall("mes:deployment")
    real_client.config_set("maxmemory", "1")  # every write is over the limit (noeviction)
    try:
        assert real_client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        for command in ("init", "run"):
            done = run_cli(command, "--redis-url", redis_server, "--rate-limit", "6")
            assert_one_line_failure(done, 1, "out of memory", "raise maxmemory")
        done = run_cli("simulate", str(EXAMPLE), "--redis-url", redis_server)
        assert_one_line_failure(done, 2, "out of memory", "raise maxmemory")
    finally:
        real_client.config_set("maxmemory", "0")
    assert real_client.hgetall("mes:deployment") == before
    assert run_cli("init", "--redis-url", redis_server).returncode == 0


# ------------------------------------------------------------------ a database that is not ours


@pytest.mark.redis
def test_init_on_a_database_with_unrelated_keys_leaves_them_alone(
    real_client: redis.Redis, redis_server: str
) -> None:
    real_client.mset({"app:user:1": "alice", "counter": "41"})
    real_client.rpush("jobs", "a", "b")
    done = run_cli("init", "--redis-url", redis_server, "--partitions", "2")
    assert done.returncode == 0, done.stderr
    assert real_client.mget("app:user:1", "counter") == [b"alice", b"41"]
    assert real_client.lrange("jobs", 0, -1) == [b"a", b"b"]
    ours = {k.decode() for k in real_client.keys("*")} - {"app:user:1", "counter", "jobs"}
    assert all(key.startswith("mes:") for key in ours), ours


@pytest.mark.redis
def test_keys_of_ours_holding_something_else_are_named_and_kept(
    real_client: redis.Redis, redis_server: str
) -> None:
    real_client.set("mes:deployment", "someone else's")
    for command in ("init", "worker", "pulse", "run"):
        done = run_cli(command, "--redis-url", redis_server, timeout=15)
        assert_one_line_failure(done, 1, "key mes:deployment holds a string", "another database")
    done = run_cli("simulate", str(EXAMPLE), "--redis-url", redis_server)
    assert_one_line_failure(done, 2, "key mes:deployment holds a string")
    assert real_client.get("mes:deployment") == b"someone else's"
    real_client.delete("mes:deployment")
    real_client.set("mes:{p01}:out", "not a stream")
    done = run_cli("init", "--redis-url", redis_server, "--partitions", "2")
    assert_one_line_failure(done, 1, "key mes:{p01}:out holds a string")
    assert real_client.get("mes:{p01}:out") == b"not a stream"


@pytest.mark.redis
def test_a_deployment_hash_with_a_broken_field_is_named(
    real_client: redis.Redis, redis_server: str
) -> None:
    assert run_cli("init", "--redis-url", redis_server, "--partitions", "2").returncode == 0
    real_client.hset("mes:deployment", "partitions", "two")
    for command in ("init", "worker"):
        done = run_cli(command, "--redis-url", redis_server, timeout=15)
        assert_one_line_failure(done, 1, "mes:deployment holds partitions = b'two'")


# ------------------------------------------------------------------ simulate's input and output


def test_simulate_a_missing_file_or_a_directory_exits_2(tmp_path: Path) -> None:
    missing = run_cli("simulate", str(tmp_path / "nope.jsonl"))
    assert_one_line_failure(missing, 2, "cannot read", "nope.jsonl", "No such file")
    directory = run_cli("simulate", str(tmp_path))
    assert_one_line_failure(directory, 2, "cannot read", str(tmp_path), "Is a directory")


def test_simulate_a_binary_file_rejects_its_lines_as_results(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(bytes(range(256)) * 40)
    done = run_cli("simulate", str(path), "--json")
    assert (done.returncode, done.stderr) == (0, "")
    rejected = json.loads(done.stdout)["rejected"]
    assert rejected and {r["errors"][0]["type"] for r in rejected} == {"invalid_event"}


def test_simulate_an_empty_file_folds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    done = run_cli("simulate", str(path))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("0 environment(s)\n")


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda text: b"\xef\xbb\xbf" + text, id="utf-8-bom"),
        pytest.param(lambda text: text.replace(b"\n", b"\r\n"), id="crlf"),
    ],
)
def test_simulate_reads_a_bom_or_crlf_file_like_the_plain_one(
    tmp_path: Path, transform: object
) -> None:
    assert callable(transform)
    plain = EXAMPLE.read_bytes()
    path = tmp_path / "edited.jsonl"
    path.write_bytes(transform(plain))
    done = run_cli("simulate", str(path), "--json")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == run_cli("simulate", str(EXAMPLE), "--json").stdout


def test_simulate_a_huge_single_line_folds_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    padding = "x" * 30_000_000
    path.write_text(f'{{"type": "clock_pulse", "ts": "2024-05-01T12:00:00Z", "pad": "{padding}"}}')
    done = run_cli("simulate", str(path), timeout=60)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr[-500:]
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text(padding)
    done = run_cli("simulate", str(garbage), timeout=60)
    assert done.returncode == 0
    assert "line 1 rejected: invalid_event" in done.stdout


@pytest.mark.parametrize("json_output", [True, False])
def test_a_reader_that_leaves_early_is_not_an_error(json_output: bool) -> None:
    args = [str(SCENARIOS / "many_monitors_and_environments.jsonl")]
    shell = " ".join([*CLI, "simulate", *args, *(["--json"] if json_output else [])])
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{shell} | head -c 20 >/dev/null"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["--json"], []])
def test_an_output_that_cannot_be_written_exits_2(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*CLI, "simulate", str(EXAMPLE), *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            timeout=30,
            check=False,
        )
    assert_one_line_failure(done, 2, "cannot write the output", "No space left")


def test_a_closed_standard_output_exits_2() -> None:
    done = subprocess.run(
        ["bash", "-c", f"{' '.join(CLI)} simulate {EXAMPLE} >&-"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
        check=False,
    )
    assert_one_line_failure(done, 2, "cannot write the output", "closed")


def test_ctrl_c_during_simulate_exits_130_without_a_traceback() -> None:
    with subprocess.Popen(
        [*CLI, "simulate", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    ) as proc:
        assert proc.stdin is not None and proc.stderr is not None
        # More than a pipe holds: once written, simulate is reading (past start-up).
        proc.stdin.write(b'{"type": "clock_pulse", "ts": "2024-05-01T12:00:00Z"}\n' * 20_000)
        proc.stdin.flush()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        stderr = proc.stderr.read().decode()
    assert code == 130, stderr
    assert stderr == "monitor-es: interrupted\n"


# ------------------------------------------------------------------ stopping long-running commands


def run_until(
    args: list[str], marker: str, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 30
) -> tuple[int, str]:
    """Starts `monitor-es ARGS`, waits for a line containing `marker`, then sends `sig`."""
    seen: list[str] = []
    with subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env()
    ) as proc:
        assert proc.stdout is not None
        timer = threading.Timer(timeout_s, proc.kill)  # a hung process must not hang the suite
        timer.start()
        try:
            for line in proc.stdout:
                seen.append(line)
                if marker in line:
                    proc.send_signal(sig)
                    break
            seen += proc.stdout.readlines()
            code = proc.wait(timeout=15)
        finally:
            timer.cancel()
    output = "".join(seen)
    assert marker in output, output
    return code, output


def _wait_for(condition: object, timeout_s: float = 15) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.redis
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", LONG_RUNNING)
def test_a_signal_stops_a_long_running_command_cleanly_releasing_its_leases(
    real_client: redis.Redis, redis_server: str, command: str, sig: signal.Signals
) -> None:
    assert run_cli("init", "--redis-url", redis_server, "--partitions", "2").returncode == 0
    args = [command, "--redis-url", redis_server]
    if command != "worker":
        args += ["--interval", "0.2"]
    with subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env()
    ) as proc:
        try:
            wanted = ["mes:{pulser}:lease"] if command != "worker" else []
            wanted += [] if command == "pulse" else ["mes:{p00}:lease", "mes:{p01}:lease"]
            _wait_for(lambda: real_client.exists(*wanted) == len(wanted))
            proc.send_signal(sig)
            code = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.stdout is not None
        output = proc.stdout.read()
    assert code == 0, output
    assert "Traceback" not in output
    assert f"{sig.name}: stopping" in output
    assert real_client.keys("mes:*:lease") == []  # released, not left to expire


@pytest.mark.redis
def test_a_worker_waiting_for_redis_stops_on_a_signal(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    code, output = run_until(["worker", "--redis-url", url], "retrying in", signal.SIGINT)
    assert code == 0, output
    assert "Traceback" not in output


@pytest.mark.redis
def test_simulate_through_redis_refuses_a_deployment_in_use(
    real_client: redis.Redis, redis_server: str
) -> None:
    first = run_cli("simulate", str(EXAMPLE), "--redis-url", redis_server)
    assert first.returncode == 0, first.stderr
    log = "mes:{p00}:log"
    entries = real_client.xlen(log)
    again = run_cli("simulate", str(EXAMPLE), "--redis-url", redis_server)
    assert_one_line_failure(again, 2, "in use", f"{entries} log entries", "database of its own")
    assert real_client.xlen(log) == entries  # nothing appended to the logs there
    # A fresh deployment whose workers run: its logs are empty, but they are its logs.
    real_client.flushall()
    real_client.function_flush()
    assert run_cli("init", "--redis-url", redis_server, "--partitions", "2").returncode == 0
    with subprocess.Popen(
        [*CLI, "worker", "--redis-url", redis_server],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    ) as worker:
        try:
            _wait_for(lambda: real_client.exists("mes:{p00}:lease", "mes:{p01}:lease") == 2)
            busy = run_cli("simulate", str(EXAMPLE), "--redis-url", redis_server)
            assert_one_line_failure(busy, 2, "in use", "2 partitions leased")
            assert real_client.xlen(log) == 0
        finally:
            worker.terminate()
            worker.wait(timeout=15)
