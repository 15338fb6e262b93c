"""Every shell command of README.md and docs/*.md, run as written against a real server.

The docs' commands are the first thing a person runs, so they are held to what they say.
Each shell block (```sh, ```bash, …) is cut into commands: continuation lines joined, a
here-document kept with its command, comment lines dropped. Each command must match
exactly one rule of `RULES`:

- a rule with a check runs the command with bash, as written, in an empty folder (a
  random `report.pdf` in it for uploads), against one embedded `sealdrop serve` on
  loopback: every documented origin (the laptop's, the compose stack's, the clusters')
  becomes that server's URL, and `<token>` and `<manage token>` the tokens of a link
  uploaded for this command. The check then asserts the exit status and the effect: the
  file downloaded byte for byte, the options applied, the link deleted, …;
- a rule with a reason names a command that cannot run here (it builds images, drives a
  cluster, runs the test suite, or needs production's PostgreSQL and S3) and says why;
  such commands are not test cases at all (nothing is skipped).

A command that matches no rule fails, so a new or changed command in the docs needs a
rule and a check here; a rule that matches no command fails too.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings, parse_duration
from tests.e2e.clients import CURL_HTTP_ERROR, curl
from tests.e2e.payloads import Uploaded, upload, write_payload
from tests.support.stack import REPO, EmbeddedStack

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console", "zsh"})
# The servers the docs address: the laptop's, the compose stack's, and the clusters'.
ORIGIN = (
    r"(?:http://127\.0\.0\.1:8000|http://localhost:8000"
    r"|https://drop\.example\.org|http://sealdrop\.localhost)"
)
NAME = "report.pdf"
SIZE = 300_000  # five segments of 64 KiB
RUN_TIMEOUT_SECONDS = 120
# Expiry is checked within minutes: the link's clock is the database's, ours the test's.
EXPIRY_SLACK = timedelta(minutes=5)
# What the README shows an upload's JSON answer to hold.
CREATED_KEYS = frozenset(
    ("token", "url", "download_url", "manage_token", "expires_at", "state", "size", "sha256")
)

_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<language>[\w-]*)\s*$")
_HEREDOC = re.compile(r"<<-?\s*['\"]?(?P<end>\w+)['\"]?")
_TRAILING_COMMENT = re.compile(r"\s+#(?:\s.*)?$")
_PLACEHOLDER = re.compile(r"<[a-z][a-z ]*>")
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
_CLIENT_CONFIG_VARIABLES = {"CURL_HOME", "XDG_CONFIG_HOME", "WGETRC"}


# -- the docs' commands -----------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One command of a shell block."""

    source: str  # file and line, for the report: "README.md:41"
    text: str  # as written, continuation lines and here-document included
    line: str  # on one line, comments dropped: what rules match

    def argv(self) -> list[str]:
        """The words of the command, as the shell would split them."""
        return shlex.split(self.line)


def shell_blocks(path: Path) -> Iterator[tuple[int, list[str]]]:
    """The shell blocks of a Markdown file: (line number of the first line, lines)."""
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        index += 1
        if fence is None:
            continue
        indent = len(fence["indent"])
        start = index
        while not lines[index].strip().startswith("```"):
            index += 1
        if fence["language"] in SHELL_LANGUAGES:
            yield start + 1, [line[indent:] for line in lines[start:index]]
        index += 1


def commands_in(path: Path) -> Iterator[Command]:
    """The commands of every shell block of `path`."""
    for first, block in shell_blocks(path):
        index = 0
        while index < len(block):
            start = index
            lines = [block[index]]
            index += 1
            if not lines[0].strip() or lines[0].lstrip().startswith("#"):
                continue
            while lines[-1].endswith("\\"):
                lines.append(block[index])
                index += 1
            words = [_TRAILING_COMMENT.sub("", line).removesuffix("\\").strip() for line in lines]
            heredoc = _HEREDOC.search(words[-1])
            if heredoc is not None:
                while block[index].strip() != heredoc["end"]:
                    lines.append(block[index])
                    index += 1
                lines.append(block[index])
                index += 1
            source = f"{path.relative_to(REPO)}:{first + start}"
            yield Command(source, "\n".join(lines), " ".join(w for w in words if w))


COMMANDS = [command for document in DOCUMENTS for command in commands_in(document)]


# -- running a command against the server -----------------------------------------------


@dataclass
class Run:
    """Where a check runs its command: the server, an empty folder, a home of its own."""

    server: EmbeddedStack
    command: Command
    folder: Path
    home: Path

    def file(self, name: str = NAME) -> bytes:
        """Write a random file into the folder (what the docs' `report.pdf` stands for)."""
        write_payload(self.folder / name, SIZE)
        return (self.folder / name).read_bytes()

    def link(self, *curl_args: str) -> tuple[Uploaded, bytes]:
        """A link to a fresh random file named `report.pdf`, uploaded with `curl_args`."""
        source = self.home / NAME
        write_payload(source, SIZE)
        return upload(self.server, source, *curl_args), source.read_bytes()

    def execute(self, link: Uploaded | None = None) -> subprocess.CompletedProcess[str]:
        """Run the command with bash, origins and placeholders replaced; it must exit 0."""
        text = re.sub(ORIGIN, self.server.base_url, self.command.text)
        if link is not None:
            text = text.replace("<token>", link.token)
            text = text.replace("<manage token>", link.manage_token)
        assert not _PLACEHOLDER.search(text), f"a placeholder this check does not fill: {text}"
        done = subprocess.run(
            ["bash", "-c", text],
            cwd=self.folder,
            env=self._environment(),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )
        assert done.returncode == 0, (
            f"{self.command.source} exited {done.returncode}: {text}\n"
            f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
        )
        return done

    def files(self) -> dict[str, bytes]:
        """What the folder holds after the command."""
        return {path.name: path.read_bytes() for path in self.folder.iterdir()}

    def _environment(self) -> dict[str, str]:
        # No proxy between the command and loopback, and no ~/.curlrc or ~/.wgetrc of ours.
        env = {
            name: value
            for name, value in os.environ.items()
            if name.lower() not in _PROXY_VARIABLES and name not in _CLIENT_CONFIG_VARIABLES
        }
        env["HOME"] = str(self.home)
        return env


def _option_values(argv: list[str], option: str) -> list[str]:
    return [value for flag, value in itertools.pairwise(argv) if flag == option]


def _headers(argv: list[str]) -> dict[str, str]:
    pairs = (header.partition(":") for header in _option_values(argv, "-H"))
    return {name.strip().lower(): value.strip() for name, _, value in pairs}


def _status(server: EmbeddedStack, token: str, password: str | None) -> dict[str, Any]:
    asked = ("-H", f"Link-Password: {password}") if password is not None else ()
    answer = curl("-f", *asked, f"{server.base_url}/api/v1/links/{token}")
    status: dict[str, Any] = json.loads(answer.body)
    return status


def _download(server: EmbeddedStack, token: str, password: str | None) -> bytes:
    asked = ("-u", f":{password}") if password is not None else ()
    return curl("-f", *asked, f"{server.base_url}/d/{token}").body


def _check_options(
    status: dict[str, Any], *, expires_in: str | None, max_downloads: str | None, password: bool
) -> None:
    lifetime = parse_duration(expires_in or Settings.model_fields["max_ttl"].default)
    expected = datetime.now(UTC) + timedelta(seconds=lifetime)
    expires_at = datetime.fromisoformat(status["expires_at"].replace("Z", "+00:00"))
    assert abs(expires_at - expected) < EXPIRY_SLACK, status
    assert status["max_downloads"] == (int(max_downloads) if max_downloads else None), status
    assert status["password_required"] is password, status
    assert status["state"] == "ready", status


# -- checks: what each documented command must do ---------------------------------------


def uploads_with_put(run: Run) -> None:
    """`curl -T report.pdf <origin>/ [-H option…]`: prints the share link; options apply."""
    data = run.file()
    printed = run.execute().stdout
    share_url, newline, rest = printed.partition("\n")
    assert (newline, rest) == ("\n", ""), f"expected the share link alone, got {printed!r}"
    assert share_url.startswith(f"{run.server.base_url}/s/"), share_url
    token = share_url.rsplit("/", 1)[1]
    headers = _headers(run.command.argv())
    password = headers.get("link-password")
    status = _status(run.server, token, password)
    _check_options(
        status,
        expires_in=headers.get("expires-in"),
        max_downloads=headers.get("max-downloads"),
        password=password is not None,
    )
    assert _download(run.server, token, password) == data


def downloads_under_its_name(run: Run) -> None:
    """`curl -fOJ [-u :pw] <origin>/d/<token>/[report.pdf]`: report.pdf, byte for byte."""
    user = _option_values(run.command.argv(), "-u")
    password = user[0].partition(":")[2] if user else None
    link, data = run.link(*(("-H", f"Link-Password: {password}") if password else ()))
    run.execute(link)
    assert run.files() == {NAME: data}


def resumes_a_broken_download(run: Run) -> None:
    """`wget -c <origin>/d/<token>/report.pdf`: asks for the rest (206) and completes the file."""
    link, data = run.link()
    (run.folder / NAME).write_bytes(data[: SIZE // 3])
    done = run.execute(link)
    assert "206 Partial Content" in done.stderr, done.stderr
    assert run.files() == {NAME: data}


def uploads_a_form(run: Run) -> None:
    """`curl -F file=@report.pdf -F option=… -H 'Accept: application/json' …/api/v1/links`."""
    data = run.file()
    created = json.loads(run.execute().stdout)
    assert set(created) == CREATED_KEYS, created
    assert created["size"] == SIZE
    fields = dict(field.split("=", 1) for field in _option_values(run.command.argv(), "-F"))
    status = _status(run.server, created["token"], fields.get("password"))
    _check_options(
        status,
        expires_in=fields.get("expires_in"),
        max_downloads=fields.get("max_downloads"),
        password="password" in fields,
    )
    assert curl("-f", created["download_url"]).body == data


def shows_the_status(run: Run) -> None:
    """`curl <origin>/api/v1/links/<token>`: the link's state and its file's details."""
    link, data = run.link()
    status = json.loads(run.execute(link).stdout)
    assert status["state"] == "ready", status
    assert (status["filename"], status["size"]) == (NAME, len(data)), status


def deletes_the_link(run: Run) -> None:
    """`curl -X DELETE -H 'Authorization: Bearer <manage token>' …`: the link is gone."""
    link, _ = run.link()
    run.execute(link)
    gone = curl("-f", f"{run.server.base_url}/d/{link.token}", expect_exit=CURL_HTTP_ERROR)
    assert gone.status == 410


def edits_the_link(run: Run) -> None:
    """`curl -X PATCH -H 'Authorization: Bearer <manage token>' … -d '{json}' …`: applied."""
    link, data = run.link()
    edit = json.loads(_option_values(run.command.argv(), "-d")[0])
    status = json.loads(run.execute(link).stdout)
    assert status == _status(run.server, link.token, None), status
    _check_options(status, expires_in=edit["expires_in"], max_downloads=None, password=False)
    assert _download(run.server, link.token, None) == data


# -- the rules --------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Commands matching `pattern` are run and `check`ed, or skipped with `reason`."""

    pattern: str
    check: Callable[[Run], None] | None = None
    reason: str | None = None

    def matches(self, command: Command) -> bool:
        """Whether the rule covers `command` (its whole line, comments dropped)."""
        return re.fullmatch(self.pattern.replace("ORIGIN", ORIGIN), command.line) is not None


RULES = [
    Rule(r"curl -T report\.pdf(?: -H '[\w-]+: [^']*')* ORIGIN/", uploads_with_put),
    Rule(r"curl -fOJ(?: -u :'[^']*')? ORIGIN/d/<token>/(?:report\.pdf)?", downloads_under_its_name),
    Rule(r"wget -c ORIGIN/d/<token>/report\.pdf", resumes_a_broken_download),
    Rule(
        r"curl -F file=@report\.pdf(?: -F \w+=[^\s']+)* -H 'Accept: application/json'"
        r" ORIGIN/api/v1/links",
        uploads_a_form,
    ),
    # Under the documented server's policy (open) the key is not read: it uploads as without.
    Rule(
        r'curl -T report\.pdf -H "Authorization: Bearer \$SEALDROP_KEY" ORIGIN/', uploads_with_put
    ),
    Rule(
        r"sealdrop uploaders (?:add|list|revoke)\b.*",
        reason="changes the server's uploaders (tests/test_cli_uploaders.py runs these commands)",
    ),
    Rule(
        r"sealdrop (?:send|get) .*",
        reason="the client; tests/e2e/test_sealdrop_client.py runs it against both modes",
    ),
    Rule(r"curl ORIGIN/api/v1/links/<token>", shows_the_status),
    Rule(
        r"curl -X DELETE -H 'Authorization: Bearer <manage token>' ORIGIN/api/v1/links/<token>",
        deletes_the_link,
    ),
    Rule(
        r"curl -X PATCH -H 'Authorization: Bearer <manage token>'"
        r" -H 'Content-Type: application/json' -d '\{[^']*\}' ORIGIN/api/v1/links/<token>",
        edits_the_link,
    ),
    Rule(
        r"curl (?:-H 'Content-Type: application/json' -d '\{[^']*\}' |-X (?:POST|DELETE) )?"
        r"(?:-H 'Accept: application/json' )?ORIGIN/api/v1/direct-uploads(?:/<id>(?:/complete)?)?",
        reason="direct uploads need S3 staging; the documented server is embedded"
        " (tests/production_stack/test_direct_uploads.py drives these routes on S3)",
    ),
    Rule(r"make run", reason="serves on port 8000 until stopped: what `sealdrop serve` does here"),
    Rule(r"make test", reason="runs the whole suite, this test included"),
    Rule(r"\.venv/bin/pytest tests/\S+(?: -m \"[^\"]*\")?", reason="runs tests: this is one"),
    Rule(
        r"(?:SEALDROP_WORKER=off )?sealdrop"
        r" (?:migrate|storage init|serve|worker --concurrency \d+)",
        reason="production's processes, for PostgreSQL, Redis and S3 (tests/support/production.py"
        " runs each for the production stack)",
    ),
    Rule(
        r"docker (?:build|compose) .*",
        reason="needs a Docker daemon (tests/deploy checks the Dockerfile and compose offline)",
    ),
    Rule(r"cp \.env\.example \.env", reason="prepares the compose stack run by `docker compose`"),
    Rule(
        r"(?:kubectl|kind) .*",
        reason="drives a Kubernetes cluster (tests/deploy renders and checks the manifests)",
    ),
    Rule(
        r"(?:PG|MASTER_KEYS|NEW|OLD)=\"\$\((?:openssl|docker|kubectl) .*\)\"",
        reason="sets a variable for the cluster commands after it",
    ),
    Rule(
        r"cat > sealdrop\.env <<EOF|shred -u sealdrop\.env",
        reason="writes, then destroys, the values of the cluster's Secret",
    ),
]


def _rules_for(command: Command) -> list[Rule]:
    return [rule for rule in RULES if rule.matches(command)]


def _is_run_here(command: Command) -> bool:
    """Whether the command's one rule runs it (a command of no or many rules runs nowhere)."""
    rules = _rules_for(command)
    return len(rules) == 1 and rules[0].check is not None


RUN_HERE = [
    pytest.param(command, id=command.source) for command in COMMANDS if _is_run_here(command)
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """One embedded `sealdrop serve` for every command of the module."""
    stack = EmbeddedStack(
        tmp_path_factory.mktemp("documented"), env={"SEALDROP_SEGMENT_LOG2": "16"}
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.mark.parametrize("command", RUN_HERE)
def test_documented_command_does_what_the_docs_say(
    command: Command, server: EmbeddedStack, tmp_path: Path
) -> None:
    check = _rules_for(command)[0].check
    assert check is not None
    folder, home = tmp_path / "folder", tmp_path / "home"
    folder.mkdir()
    home.mkdir()
    check(Run(server, command, folder, home))


def test_every_documented_command_has_exactly_one_rule() -> None:
    unruled = [
        f"{command.source}: {len(_rules_for(command))} rules: {command.line}"
        for command in COMMANDS
        if len(_rules_for(command)) != 1
    ]
    assert unruled == [], "add a rule with a check (or a reason it cannot run here) to RULES"


def test_every_command_not_run_here_says_why() -> None:
    not_run = [command for command in COMMANDS if not _is_run_here(command)]
    assert all(rule.reason for command in not_run for rule in _rules_for(command))
    assert len(not_run) < len(COMMANDS), "the docs' commands are all left unrun"


def test_every_rule_matches_a_documented_command() -> None:
    unused = [rule.pattern for rule in RULES if not any(map(rule.matches, COMMANDS))]
    assert unused == [], "rules for commands the docs no longer have"
