"""Secret and PII redaction: every detector with positives and negatives (the Rust unit tests
in rust/clean/redact_tests.rs cover more cases), the labeled set of benchmarks/redact_set/
(recall and code changes, the goals of issue 13), and properties: redacted Python that parsed
still parses, idempotence."""

from __future__ import annotations

import ast
import gzip
import itertools
import json
import pathlib

import pytest
from codekiln.data import redact, redaction_spans
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = pathlib.Path(__file__).resolve().parents[1]
SET_DIR = ROOT / "benchmarks" / "redact_set"
CORPUS = ROOT.parent / "shared" / "corpus"

POSITIVES = [
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIB\n-----END RSA PRIVATE KEY-----",
        "<KEY>",
        "private_key",
    ),
    ("aws = 'AKIAIOSFODNN7EXAMPLE'", "aws = '<KEY>'", "aws_key"),
    ("gh = 'ghp_16C7e42F292c6912E7710c838347Ae178B4a'", "gh = '<KEY>'", "github_token"),
    ("slack = 'xoxb-123456789012-abcdefghijkl'", "slack = '<KEY>'", "slack_token"),
    ("g = 'AIzaSyA1234567890abcdefghijklmnopqrstuv'", "g = '<KEY>'", "google_api_key"),
    ("API_TOKEN = 'f8Kq2mZp9vLw3nRt7yBc4dFg'", "API_TOKEN = '<KEY>'", "generic_secret"),
    # camelCase / PascalCase / mixed spellings of compound names
    ('apiKey: "f8Kq2mZp9vLw3nRt7yBc4dFg"', 'apiKey: "<KEY>"', "generic_secret"),
    ("self.PrivateKey = 'f8Kq2mZp9vLw3nRt7yBc4dFg'", "self.PrivateKey = '<KEY>'", "generic_secret"),
    ("AccessKey='f8Kq2mZp9vLw3nRt7yBc4dFg'", "AccessKey='<KEY>'", "generic_secret"),
    ("stripeAPIKey = 'f8Kq2mZp9vLw3nRt7yBc4dFg'", "stripeAPIKey = '<KEY>'", "generic_secret"),
    (
        "auth_token = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N'",
        "auth_token = '<KEY>'",
        "generic_secret",
    ),
    ("password = 'hunter2'", "password = '<PASSWORD>'", "password"),
    ('login(user, passwd="Pa55w0rd")', 'login(user, passwd="<PASSWORD>")', "password"),
    (
        "DB = 'mysql://root:toor@db.internal/x'",
        "DB = 'mysql://root:<PASSWORD>@db.internal/x'",
        "url_password",
    ),
    ("# maintainer: Jane <jane.doe@example.com>", "# maintainer: Jane <<EMAIL>>", "email"),
    ("SERVER = '93.184.216.34'", "SERVER = '<IP>'", "ip_address"),
    # assignment forms and values of issue 13
    ("api_key: str = 'f8Kq2mZp9vLw3nRt7yBc4dFg'", "api_key: str = '<KEY>'", "generic_secret"),
    (
        "os.environ['MY_TOKEN'] = 'f8Kq2mZp9vLw3nRt7yBc4dFg'",
        "os.environ['MY_TOKEN'] = '<KEY>'",
        "generic_secret",
    ),
    (
        "getenv('API_KEY', 'f8Kq2mZp9vLw3nRt7yBc4dFg')",
        "getenv('API_KEY', '<KEY>')",
        "generic_secret",
    ),
    ("DB_PASSWORD = ':hP&*:9n:hFy'", "DB_PASSWORD = '<PASSWORD>'", "password"),
    ("c = 'Server=x;Pwd=Xk29!mqLw;'", "c = 'Server=x;Pwd=<PASSWORD>;'", "password"),
    (
        "h = {'Authorization': 'Bearer zDzV8fUkkibjL5DZPjN0MEQ7'}",
        "h = {'Authorization': 'Bearer <KEY>'}",
        "generic_secret",
    ),
    ("# contact: jürgen@müller-bau.de", "# contact: <EMAIL>", "email"),
    (
        'k = "-----BEGIN PRIVATE KEY-----\\n' + "A" * 64 + '\\nMIIBxyzxyzxyzxyzxyz"',
        'k = "<KEY>"',
        "private_key",
    ),
]

NEGATIVES = [
    # issue 13's false positives: network tables, browser versions, version pins, OIDs,
    # SSH/URL user names, environment-variable names, PEM marker strings in code
    '["173.245.48.0/20", "103.21.244.0/22"]',
    "UA = 'Mozilla/5.0 Chrome/131.0.0.0 Safari/537.36'",
    "deps = ['comtypes==1.1.14.2']",
    "OID_SAN = '2.5.29.17'",
    "REPO = 'git@github.com:org/repo.git'",
    "clone = 'https://user@bitbucket.org/team/project.git'",
    "TOKEN_ENV_VAR = 'GITHUB_TOKEN_FOR_CI_2'",
    'x = [l for l in ls if l not in ("-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----")]',
    "password = input()",
    "password = getpass.getpass('Password: ')",
    "password = ''",
    "password = '{password}'",
    "PASSWORD_FIELD = 'password'",
    "__version__ = '1.2.3.4'",
    "release = '2.10.0.1.post3'",
    "# As per [1, 4.3.4.1] TYPE is REQUIRED",
    "'plugin': 'flowplayer-3.2.0.1',",
    "See `section 3.4.1.2`_ item 2",
    "HOST = '127.0.0.1'",
    "NET = '192.168.0.1'",
    "@property",
    "y = x @ self.weight",
    "api_key = os.environ['API_KEY']",
    "apiKey = os.environ.get('API_KEY')",
    "accessKeyId = 'short'",
    'tokenizer_name = "tekken_240911.json"',
    'api_key_file = "credentials_2024_v2.yaml"',
    'secret_path = "models/tok_240323.model.v3"',
    "token_type = 'bearer_token_value_here'",
    "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
    "url = 'http://localhost:8080/path'",
]


@pytest.mark.parametrize(("text", "want", "kind"), POSITIVES)
def test_positive(text, want, kind):
    out, counts = redact(text)
    assert out == want
    assert counts[kind] == 1
    assert sum(counts.values()) == 1


@pytest.mark.parametrize("text", NEGATIVES)
def test_negative(text):
    out, counts = redact(text)
    assert out == text, redaction_spans(text)
    assert sum(counts.values()) == 0


def test_spans_are_byte_offsets_in_utf8():
    text = "naïve = 'é'; mail = 'a@example.com'"
    spans = redaction_spans(text)
    assert len(spans) == 1
    s, e, kind = spans[0]
    assert kind == "email"
    assert text.encode()[s:e] == b"a@example.com"


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="@.-_:/=\"'"),
        max_size=300,
    )
)
def test_text_without_trigger_characters_is_unchanged(text):
    assert redact(text)[0] == text


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([p[0] for p in POSITIVES] + NEGATIVES + ["x = 1", "\n"]), max_size=8)
)
def test_redaction_is_idempotent(parts):
    once = redact("\n".join(parts))[0]
    assert redact(once)[0] == once


def _cases(name: str) -> list[tuple[bool, str, list[tuple[int, int]]]]:
    """``(positive, text, secret byte spans)`` of one labeled set file (format in tune.txt)."""
    out = []
    for block in ("\n" + (SET_DIR / name).read_text(encoding="utf-8")).split("\n### ")[1:]:
        header, _, raw = block.partition("\n")
        raw = raw.rstrip("\n") + "\n"
        text, secrets = "", []
        while "⟦" in raw:
            before, rest = raw.split("⟦", 1)
            secret, raw = rest.split("⟧", 1)
            start = len((text + before).encode())
            text += before + secret
            secrets.append((start, len(text.encode())))
        out.append((header.startswith("pos"), text + raw, secrets))
    return out


LABELED = {name: _cases(f"{name}.txt") for name in ("tune", "holdout")}


def _removed(secret: tuple[int, int], spans: list[tuple[int, int, str]]) -> bool:
    return all(any(s <= i < e for s, e, _ in spans) for i in range(*secret))


@pytest.mark.parametrize("name", ["tune", "holdout"])
def test_labeled_set_meets_the_goals(name):
    """Issue 13's goals on each part of the labeled set: recall >= 90% (a positive counts only
    when every byte of every secret is redacted), <= 3% of negatives changed. Before the
    rework: 53% and 52% recall, 39% and 36% of negatives changed."""
    cases = LABELED[name]
    pos = [(t, sec) for p, t, sec in cases if p]
    neg = [t for p, t, _ in cases if not p]
    assert len(pos) >= 30 and len(neg) >= 25
    found = sum(all(_removed(s, redaction_spans(t)) for s in sec) for t, sec in pos)
    changed = [t for t in neg if redact(t)[0] != t]
    assert found >= 0.9 * len(pos), f"recall {found}/{len(pos)}"
    assert len(changed) <= 0.03 * len(neg), changed


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


ALL_TEXTS = (
    [t for cases in LABELED.values() for _, t, _ in cases] + [p[0] for p in POSITIVES] + NEGATIVES
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(ALL_TEXTS), min_size=1, max_size=6),
    st.sampled_from(["\n", "\n\n", "\n    "]),
)
def test_redacted_python_that_parsed_still_parses(parts, sep):
    """No redaction removes code structure: only secrets inside literals, comments or strings
    are replaced, never the quotes or code between them (a PEM match spanning two marker
    strings deleted a list comprehension before)."""
    text = sep.join(parts)
    if _parses(text):
        out = redact(text)[0]
        assert _parses(out), (text, out)


@pytest.mark.slow
@pytest.mark.corpus
def test_real_corpus_redactions_keep_python_parsing():
    """On real files with findings: what parsed before redaction parses after."""
    shard = CORPUS / "train-00000.jsonl.gz"
    if not shard.exists():
        pytest.skip(f"optional corpus not found at {CORPUS}")
    checked = 0
    with gzip.open(shard, "rt", encoding="utf-8") as f:
        for line in itertools.islice(f, 1000):
            text = json.loads(line)["content"]
            out, counts = redact(text)
            if sum(counts.values()) and _parses(text):
                assert _parses(out), json.loads(line)["path"]
                checked += 1
    assert checked >= 5


FRAGMENTS = [
    "password", "api_key", "Token", "secret", "pwd", "=", ":", ",", "(", ")", "[", "]", "+", " ",
    "\n", "\\n", '"', "'", '"""', "f", "#", ";", "&", "?", "@", ".", "/", "://", "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEA1234567890abcdefABCDEF", "Bearer ", "é", "日本", "иван",
    "81", "2", "0", "x9Kq2mZp", "getenv", "$", "%", "{", "}",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40))
def test_any_mix_of_trigger_fragments_redacts_cleanly(parts):
    """Random mixes of every detector's trigger characters, quotes and non-ASCII text: no
    error, spans on character boundaries, and the text outside the spans is kept in order."""
    text = "".join(parts)
    data = text.encode()
    spans = redaction_spans(text)
    out = redact(text)[0]
    pos, kept = 0, []
    for s, e, _ in spans:
        assert pos <= s < e <= len(data)
        data[s:e].decode()  # a character boundary at both ends
        kept.append(data[pos:s].decode())
        pos = e
    kept.append(data[pos:].decode())
    rest = out
    for piece in kept:
        i = rest.find(piece)
        assert i >= 0, (text, out)
        rest = rest[i + len(piece) :]
