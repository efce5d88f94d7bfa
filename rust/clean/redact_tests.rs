//! Unit tests of redaction (`redact.rs` and its helpers): every detector with positives and
//! negatives, the assignment forms, the false positives of issue 13, and linear work.

use crate::clean::redact::{Kind, Redactor, WORK};
use crate::clean::redact_checks::entropy;

fn kinds(text: &str) -> Vec<Kind> {
    Redactor::shared()
        .find(text)
        .into_iter()
        .map(|f| f.2)
        .collect()
}

fn redacted(text: &str) -> String {
    Redactor::shared().redact(text).0
}

#[test]
fn private_keys() {
    let t = "KEY = '''-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----'''\n";
    assert_eq!(redacted(t), "KEY = '''<KEY>'''\n");
    let t2 = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----";
    assert_eq!(redacted(t2), "<KEY>");
    // A public key and a lone BEGIN line are not secrets.
    for t in [
        "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
        "if line.startswith('-----BEGIN RSA PRIVATE KEY-----'):",
    ] {
        assert!(kinds(t).is_empty(), "{t}");
    }
}

#[test]
fn cloud_and_api_tokens() {
    let cases = [
        ("aws_id = 'AKIAIOSFODNN7EXAMPLE'", Kind::AwsKey),
        (
            "t = 'ghp_16C7e42F292c6912E7710c838347Ae178B4a'",
            Kind::GithubToken,
        ),
        ("SLACK = 'xoxb-123456789012-abcdefghijkl'", Kind::SlackToken),
        (
            "url = 'https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX'",
            Kind::SlackToken,
        ),
        (
            "k = 'AIzaSyA1234567890abcdefghijklmnopqrstuv'",
            Kind::GoogleApiKey,
        ),
        (
            "stripe.api_key = 'sk_live_4eC39HqLyjWDarjtT1zdp7dc'",
            Kind::StripeKey,
        ),
        (
            "SECRET_KEY = 'x8Kq2mZp9vLw3nRt7yBc4dFg'",
            Kind::GenericSecret,
        ),
        (
            "\"api_key\": \"a1b2c3d4e5f6g7h8i9j0k1l2\"",
            Kind::GenericSecret,
        ),
    ];
    for (t, k) in cases {
        assert_eq!(kinds(t), vec![k], "{t}");
        assert!(redacted(t).contains("<KEY>"), "{t}");
    }
    assert_eq!(
        redacted("SECRET_KEY = 'x8Kq2mZp9vLw3nRt7yBc4dFg'"),
        "SECRET_KEY = '<KEY>'"
    );
    for t in [
        "AKIA_PREFIX = 'AKIA'",                        // too short
        "api_key = os.environ['API_KEY']",             // not a literal
        "token_type = 'bearer_token_value_here'",      // no digits
        "SECRET_KEY = 'aaaaaaaaaaaaaaaa1111111111'",   // low entropy
        "token = get_token(user_id=1234567890123456)", // call
        "ghp_short = 1",
    ] {
        assert!(kinds(t).is_empty(), "{t}: {:?}", kinds(t));
    }
}

#[test]
fn passwords() {
    assert_eq!(redacted("password = 'hunter2'"), "password = '<PASSWORD>'");
    assert_eq!(
        redacted("db_password=\"s3cr3t!\""),
        "db_password=\"<PASSWORD>\""
    );
    assert_eq!(
        redacted("connect(user='x', passwd='pa55')"),
        "connect(user='x', passwd='<PASSWORD>')"
    );
    assert_eq!(
        redacted("{\"password\": \"letmein\"}"),
        "{\"password\": \"<PASSWORD>\"}"
    );
    assert_eq!(
        redacted("url = 'postgres://admin:Tr0ub4dor@db.example.com/app'"),
        "url = 'postgres://admin:<PASSWORD>@db.example.com/app'"
    );
    for t in [
        "password = input()",
        "password = getpass.getpass('Password: ')",
        "password = ''",
        "password = '{password}'",
        "password = '%(password)s'",
        "PASSWORD_FIELD = 'password'",
        "if password == 'secret':",
        "'<input type=\"password\">'",
        "url = 'ssh://git@gitserver/repo.git'",
        "url = 'http://localhost:8080/path'",
        "url = f'https://{user}:{password}@host/'",
    ] {
        assert!(kinds(t).is_empty(), "{t}: {:?}", kinds(t));
    }
}

#[test]
fn short_pass_names() {
    // `pass` for password: a part between underscores/dashes, a camelCase end, a quoted key.
    assert_eq!(
        redacted("SMTP_PASS = 'Zq7!mW3r'"),
        "SMTP_PASS = '<PASSWORD>'"
    );
    assert_eq!(
        redacted("connect(db_pass=\"t0pS3cr3t\")"),
        "connect(db_pass=\"<PASSWORD>\")"
    );
    assert_eq!(
        redacted("self.dbPass = 'Kj8#vLq2'"),
        "self.dbPass = '<PASSWORD>'"
    );
    assert_eq!(
        redacted("{'user': 'app', 'pass': 'Hx4%nB8q'}"),
        "{'user': 'app', 'pass': '<PASSWORD>'}"
    );
    assert_eq!(
        redacted("if (db_pass := 'K9!vR2#m'):"),
        "if (db_pass := '<PASSWORD>'):"
    );
    assert_eq!(redacted("PASS = \"twisted\""), "PASS = \"<PASSWORD>\"");
    assert_eq!(redacted("SMTP-PASS: Zq7!mW3r"), "SMTP-PASS: <PASSWORD>");
    // Words, statuses and passes that are not passwords; values that are words.
    for t in [
        "PASS = 'PASS'",
        "TEST_PASS = 'passed'",
        "PASS_THROUGH = 'passthrough'",
        "proxy_bypass = 'localhost,example.org'",
        "proxyByPass = 'a,b;c-1'",
        "first_pass = 'optimize-1'",
        "DB_PASS = 'twisted_test'",
        "on_pass = 'continue'",
        "class A:\n    pass\nx = 'Zq7!mW3r'",
        "compass = 'N-1'",
    ] {
        assert!(kinds(t).is_empty(), "{t}: {:?}", kinds(t));
    }
    // Weak passwords are passwords all the same.
    assert_eq!(redacted("db_pass = \"root\""), "db_pass = \"<PASSWORD>\"");
    assert_eq!(redacted("_API_PASS = '11111'"), "_API_PASS = '<PASSWORD>'");
    // Full spellings keep the plain password rules.
    assert_eq!(
        redacted("smtp_password = 'failover'"),
        "smtp_password = '<PASSWORD>'"
    );
    assert_eq!(
        redacted("passphrase = 'correcthorse'"),
        "passphrase = '<PASSWORD>'"
    );
}

#[test]
fn emails() {
    assert_eq!(
        redacted("# Author: Jane Doe <jane.doe@example.com>"),
        "# Author: Jane Doe <<EMAIL>>"
    );
    assert_eq!(redacted("mail = 'a+b@mail.co.uk'"), "mail = '<EMAIL>'");
    for t in [
        "@property",
        "@functools.lru_cache(maxsize=None)",
        "y = x @ self.weight",
        "y = x@self.weight",
        "z = a@b.T",
        "user@localhost",
    ] {
        assert!(kinds(t).is_empty(), "{t}: {:?}", kinds(t));
    }
}

#[test]
fn ip_addresses() {
    assert_eq!(redacted("HOST = '93.184.216.34'"), "HOST = '<IP>'");
    assert_eq!(redacted("ping 81.2.69.160 now"), "ping <IP> now");
    // At a line's start, an address followed by a host name, a port or nothing is one.
    assert_eq!(redacted("93.184.216.34 example.com"), "<IP> example.com");
    assert_eq!(redacted("# 81.2.69.160:8080"), "# <IP>:8080");
    assert_eq!(redacted("  81.2.69.160\n"), "  <IP>\n");
    assert_eq!(
        redacted("url = 'http://93.184.216.34/x'"),
        "url = 'http://<IP>/x'"
    );
    for t in [
        "__version__ = '1.2.3.4'",
        "VERSION = (1, 2, 3)",
        "release = '2.10.0.1.post3'",
        "x = 1.2.3.4.5",
        "bind = '127.0.0.1'",
        "net = '192.168.1.20'",
        "any = '0.0.0.0'",
        "mask = '255.255.255.0'",
        "private = '10.1.2.3'",
        "bad = '256.1.1.1'",
        "v1.2.3.4",
        "# As of [1, 4.3.3.1] the tag is REQUIRED",
        "'plugin': 'flowplayer-3.2.0.1',",
        "See `section 3.4.1.2`_ item 2",
        "dns = '8.8.8.8'",
        "via = 'SIP/2.0/UDP;received=192.0.2.1'",
        "            # # # # 17.4.1.6 logical-and: Covered in \"RelationalExpression\"",
        " * 14.3.2.1 Scope",
        "17.4.1.7 RDFterm-equal",
    ] {
        assert!(kinds(t).is_empty(), "{t}: {:?}", kinds(t));
    }
}

#[test]
fn counts_and_no_copy_when_clean() {
    let r = Redactor::shared();
    let (out, c) = r.redact("a = 'x@example.org'\nb = 'y@example.org'\nip = '81.2.69.142'\n");
    assert_eq!(out, "a = '<EMAIL>'\nb = '<EMAIL>'\nip = '<IP>'\n");
    assert_eq!((c.get(Kind::Email), c.get(Kind::Ip), c.total()), (2, 1, 3));
    let mut s = String::from("def f():\n    return 1\n");
    assert_eq!(r.redact_in_place(&mut s).total(), 0);
    assert_eq!(s, "def f():\n    return 1\n");
    assert!(entropy("aaaa") < 0.01 && (entropy("abcd") - 2.0).abs() < 1e-9);
}

#[test]
fn assignment_forms() {
    let s = "f8Kq2mZp9vLw3nRt7yBc4dFg";
    for (t, want) in [
        (
            format!("api_token: str = \"{s}\""),
            "api_token: str = \"<KEY>\"",
        ),
        (
            format!("os.environ[\"MY_API_KEY\"] = \"{s}\""),
            "os.environ[\"MY_API_KEY\"] = \"<KEY>\"",
        ),
        (
            format!("cfg['secret_key'] = '{s}'"),
            "cfg['secret_key'] = '<KEY>'",
        ),
        (
            format!("def f(api_key=\"{s}\"):"),
            "def f(api_key=\"<KEY>\"):",
        ),
        (
            format!("def f(auth_token: str = '{s}') -> C:"),
            "def f(auth_token: str = '<KEY>') -> C:",
        ),
        (
            format!("os.getenv(\"BOT_TOKEN\", \"{s}\")"),
            "os.getenv(\"BOT_TOKEN\", \"<KEY>\")",
        ),
        (
            format!("SECRET = \"\"\"{s}\"\"\""),
            "SECRET = \"\"\"<KEY>\"\"\"",
        ),
        (
            format!("API_KEY = (\n    \"{s}\"\n)"),
            "API_KEY = (\n    \"<KEY>\"\n)",
        ),
        (
            "TOKEN = \"9vLw3nRt\" + \"7yBc4dFgx8Kq2mZp\"".to_string(),
            "TOKEN = \"<KEY>\" + \"<KEY>\"",
        ),
        (
            "SECRET_KEY = 'django-insecure-Jfm$5:di4P$~%zJ5+x!q8'".to_string(),
            "SECRET_KEY = '<KEY>'",
        ),
        (format!("# client_secret: {s}"), "# client_secret: <KEY>"),
        (format!("# api_key = {s}"), "# api_key = <KEY>"),
        (
            format!("h = {{\"X-Auth-Token\": \"{s}\"}}"),
            "h = {\"X-Auth-Token\": \"<KEY>\"}",
        ),
        (
            format!("h = {{\"Authorization\": \"Bearer {s}\"}}"),
            "h = {\"Authorization\": \"Bearer <KEY>\"}",
        ),
        (
            "admin_password: str = \"Tr0ub4dor&3\"".to_string(),
            "admin_password: str = \"<PASSWORD>\"",
        ),
        ("PWD = f\"Zx9kP2mQ77\"".to_string(), "PWD = f\"<PASSWORD>\""),
        (
            "if (db_password := \"K9!vR2#mQ\"):".to_string(),
            "if (db_password := \"<PASSWORD>\"):",
        ),
        (
            "c = \"Server=x;Uid=sa;Pwd=Xk29!mqLw;Encrypt=yes;\"".to_string(),
            "c = \"Server=x;Uid=sa;Pwd=<PASSWORD>;Encrypt=yes;\"",
        ),
        (
            "d = \"host=db user=r password=r3p0rtP4ss dbname=s\"".to_string(),
            "d = \"host=db user=r password=<PASSWORD> dbname=s\"",
        ),
        (
            "P = \"r00t$Pa55\"\npassword = \"r00t$Pa55\"".to_string(),
            "P = \"r00t$Pa55\"\npassword = \"<PASSWORD>\"",
        ),
        (
            "u = \"redis://:mvnEN5N1aE6P@cache:6379/0\"".to_string(),
            "u = \"redis://:<PASSWORD>@cache:6379/0\"",
        ),
        (
            "u = \"amqp://guest:p%40ssw0rd%21@rabbit.example.org/\"".to_string(),
            "u = \"amqp://guest:<PASSWORD>@rabbit.example.org/\"",
        ),
    ] {
        assert_eq!(redacted(&t), want, "{t}");
    }
}

#[test]
fn code_that_is_not_a_secret() {
    for t in [
        "api_key = os.environ.get(\"OPENAI_API_KEY\")",
        "TOKEN_ENV_VAR = \"GITHUB_TOKEN_FOR_CI_2\"",
        "SECRET_KEY_SETTING = \"DJANGO_SECRET_KEY_V2\"",
        "DB_PASSWORD_NAME = \"DB_PASSWORD\"",
        "secret_file = \"/etc/app/secrets/service_account_2024.json\"",
        "TOKEN_URL = \"https://oauth2.googleapis.com/token\"",
        "API_KEY = \"<your-api-key-here>\"",
        "client = Client(api_key=api_key, secret_key=settings.SECRET_KEY)",
        "headers = {\"Authorization\": f\"Bearer {self.token}\"}",
        "password: Optional[str] = None",
        "password: str",
        "    password = pw\n",
        "f(user, password=pw1)",
        "url = base + \"&token=\" + token",
        "if token == \"abcdefgh12345678XYZ\":",
        "p = \"$DB_PASSWORD\"\npassword = \"$DB_PW\"",
        "pwd = \"/home/user/project\"",
        "url = f\"postgresql://{user}:{password}@{host}/{db}\"",
        // found on the corpus (precision sample): lists of names, call arguments, tuples,
        // message constants
        "self.askForAuth(b\"password\", b\"\\x00\" + NS(password))",
        "d = {\"pass\": \"passphrase\", \"format\": \"sha256-base64\"}",
        "FIELDS = ('type', 'host', 'username', 'password', 'remote_dns')",
        "usernamePassword = (b\"iamuser\", b\"thisispassword\")",
        "ERRORS = {\"ERR_PASSWDMISMATCH\": \"464\"}",
        "DSN = \"mysql://%(user)s:%(password)s@%(host)s/%(name)s\"",
    ] {
        assert!(kinds(t).is_empty(), "{t}: {:?}", Redactor::shared().find(t));
    }
}

#[test]
fn addresses_that_are_not_personal() {
    for t in [
        "NETS = [\"173.245.48.0/20\", \"103.21.244.0/22\", \"141.101.64.0/18\"]",
        "n = ip_network(\"45.64.64.0/22\")",
        "b = \"131.107.255.255\"",
        "UA = \"Mozilla/5.0 AppleWebKit/537.36 Chrome/131.0.0.0 Safari/537.36\"",
        "UA = \"x Chrome/120.0.6099.109 Edg/120.0.2210.91\"",
        "deps = [\"comtypes==1.1.14.2\", \"pkg>=4.1.12.12\"]",
        "OID_SAN = \"2.5.29.17\"",
        "REPO = \"git@github.com:example-org/example-repo.git\"",
        "r = \"ssh://deploy@git.example.com/srv/repo.git\"",
        "c = \"https://user@bitbucket.org/team/project.git\"",
        "cmd = [\"scp\", \"a.tgz\", \"deploy@staging.example.com:/srv/app/\"]",
        "out = q@k.transpose(-2, -1)",
        "y = x@self.weight2 + b@c.T",
        "y = a@self.io",
    ] {
        assert!(kinds(t).is_empty(), "{t}: {:?}", Redactor::shared().find(t));
    }
    for (t, want) in [
        ("# contact: jürgen@müller-bau.de", "# contact: <EMAIL>"),
        ("# автор: иван@пример.рф", "# автор: <EMAIL>"),
        ("S = \"help@xn--mller-kva.de\"", "S = \"<EMAIL>\""),
        ("M = \"ops@acme.engineering\"", "M = \"<EMAIL>\""),
        (
            "os.system(\"ssh deploy@52.14.231.198 ls\")",
            "os.system(\"ssh deploy@<IP> ls\")",
        ),
    ] {
        assert_eq!(redacted(t), want, "{t}");
    }
}

#[test]
fn vendor_tokens() {
    for t in [
        "k = \"sk-proj-wjJJibaZUPgHV7iB3m03nbqnsGpWLuqIA1id6Vw5DQL05HA064GiIjHGb3CXl\"",
        "g = \"glpat-zDzV8fUkkibjL5DZPjN0\"",
        "s = \"SG.Zx7Cv5Bn3Mm1Qw9Er7Ty5U.Ui3Op1As9Df7Gh5Jk3Ll1Zx9Cv7Bn5Mm3Qw1Er9Ty7Ui5\"",
        "j = \"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MjQyIn0.Tq338UKnJmjEfiI9Fu3YxHt\"",
    ] {
        assert_eq!(kinds(t), vec![Kind::GenericSecret], "{t}");
    }
}

/// Bytes examined for `text` (the sum of the `charge`s).
fn work(text: &str) -> u64 {
    WORK.with(|w| w.set(0));
    Redactor::shared().find(text);
    WORK.with(|w| w.get())
}

/// The inputs that took quadratic time (issue 13: 2 MB on one line 44 s, a long word
/// repeating "secret" 201 s), and more of the same shape for every trigger: the work for 4x
/// the input is at most ~4x (it was ~16x: each trigger read the rest of its line).
#[test]
fn work_is_linear_in_the_input() {
    let pieces = [
        "x = f(a, b) + 1.5  # token secret key password 81.2.69.160 a@b.io s://u:p@h ",
        "secret",
        "-----BEGIN RSA PRIVATE KEY-----\\nMIIEow",
        "81.2.69.160 ",
        "a.b@c.de",
        "s://u:p",
        "password=",
        "api_key = (\"",
        "\"token\", ",
    ];
    for piece in pieces {
        let n = 50_000 / piece.len() + 1;
        let (small, large) = (piece.repeat(n), piece.repeat(4 * n));
        let (ws, wl) = (work(&small), work(&large));
        assert!(
            ws >= small.len() as u64 / 2,
            "{piece:?}: {ws} bytes examined"
        );
        assert!(
            wl <= 9 * ws / 2,
            "{piece:?}: work {ws} -> {wl} for 4x the input"
        );
    }
}
