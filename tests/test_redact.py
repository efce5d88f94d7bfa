"""Secret and PII redaction: every detector with positives and negatives (the Rust unit tests
in rust/clean/redact.rs cover more cases), plus properties."""

from __future__ import annotations

import pytest
from codekiln.data import redact, redaction_spans
from hypothesis import given, settings
from hypothesis import strategies as st

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
]

NEGATIVES = [
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
