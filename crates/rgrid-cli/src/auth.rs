//! The authentication flags of `serve` and `call`: exactly one source of credentials.
//!
//! - `--jwt-secret SECRET`, `--jwt-secret-file PATH` or `RGRID_JWT_SECRET`: the grid's shared
//!   secret, for [`rgrid::ManagerBuilder::jwt_secret`] (short-lived tokens bound to the
//!   dialing and the dialed host; the secret never travels). Recommended for grids of rgrid
//!   nodes.
//! - `--minio-access-key KEY` with `--minio-secret-key SECRET` or `--minio-secret-key-file
//!   PATH` (or `RGRID_MINIO_ACCESS_KEY` / `RGRID_MINIO_SECRET_KEY`): MinIO's root credentials,
//!   for [`rgrid::ManagerBuilder::minio_jwt`], to join a grid of MinIO servers. MinIO signs
//!   its node tokens with its root credentials (`MINIO_ROOT_USER` / `MINIO_ROOT_PASSWORD`),
//!   but rgrid does not read those variables itself: a shell that has them for a MinIO server
//!   would otherwise switch rgrid to MinIO's tokens (or make a conflict) without being asked.
//! - `--token T` or `RGRID_TOKEN`: a static shared token sent as is
//!   ([`rgrid::ManagerBuilder::token`]), for tests.
//!
//! Two sources are refused by clap (a flag and a variable of another source count alike; the
//! error names the variables that are set); none is refused with a message naming them all.
//! Secrets are never printed: [`Secret`]'s `Debug` is `<redacted>`, `--help` hides the values
//! of the variables, and no error message quotes one.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::Args;
use rgrid::ManagerBuilder;

use crate::node::Failure;

/// A secret from a flag, the environment or a file. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How clap makes one from a flag or variable (never fails, so clap never quotes a value;
/// the flags also take values that start with `-`, which clap would otherwise report as an
/// unknown flag, quoting it).
impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s.into_bytes())
    }
}

impl Secret {
    /// Reads a secret file: its bytes without the line breaks at its end. An unreadable or
    /// empty file is an error that names `flag` and the path, never the content.
    fn read(flag: &str, path: &Path) -> Result<Secret, Failure> {
        let mut bytes = std::fs::read(path).map_err(|e| {
            Failure::Local(format!("{flag} {}: cannot read it: {e}", path.display()))
        })?;
        while bytes.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
            bytes.pop();
        }
        if bytes.is_empty() {
            return Err(Failure::Local(format!(
                "{flag} {}: the file is empty",
                path.display()
            )));
        }
        Ok(Secret(bytes))
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The environment variables that set an authentication flag, with the flag each sets.
pub(crate) const AUTH_ENV: [(&str, &str); 4] = [
    ("RGRID_JWT_SECRET", "--jwt-secret"),
    ("RGRID_MINIO_ACCESS_KEY", "--minio-access-key"),
    ("RGRID_MINIO_SECRET_KEY", "--minio-secret-key"),
    ("RGRID_TOKEN", "--token"),
];

/// What to tell about the environment when clap refused two authentication sources: each
/// variable of [`AUTH_ENV`] that is set (by name; never its value) and the flag it counts as.
pub(crate) fn env_tips() -> Vec<String> {
    AUTH_ENV
        .iter()
        .filter(|(var, _)| std::env::var_os(var).is_some())
        .map(|(var, flag)| {
            format!("{var} is set in the environment and counts as {flag}; unset it to use another option")
        })
        .collect()
}

/// The section of `--help` that lists them.
const HEADING: &str = "Authentication (exactly one)";

/// The authentication flags of a node (exactly one source; see the module docs).
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct AuthArgs {
    /// The grid's shared secret for short-lived JWTs bound to both hosts (recommended; the
    /// secret itself never travels). Prefer the file or the environment variable: a
    /// command line can be seen by other users of the machine.
    #[arg(
        long,
        help_heading = HEADING,
        value_name = "SECRET",
        env = "RGRID_JWT_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true,
        conflicts_with_all = [
            "jwt_secret_file",
            "minio_access_key",
            "minio_secret_key",
            "minio_secret_key_file",
        ]
    )]
    pub(crate) jwt_secret: Option<Secret>,
    /// Read the JWT secret from this file (line breaks at its end are ignored).
    #[arg(
        long,
        help_heading = HEADING,
        value_name = "PATH",
        conflicts_with_all = ["minio_access_key", "minio_secret_key", "minio_secret_key_file"]
    )]
    pub(crate) jwt_secret_file: Option<PathBuf>,
    /// MinIO's root user (MINIO_ROOT_USER of the MinIO servers), to join a grid with MinIO
    /// servers on MinIO's node tokens; needs the MinIO secret key.
    #[arg(
        long,
        help_heading = HEADING,
        value_name = "KEY",
        env = "RGRID_MINIO_ACCESS_KEY",
        hide_env_values = true
    )]
    pub(crate) minio_access_key: Option<String>,
    /// MinIO's root password (MINIO_ROOT_PASSWORD of the MinIO servers); goes with
    /// --minio-access-key.
    #[arg(
        long,
        help_heading = HEADING,
        value_name = "SECRET",
        env = "RGRID_MINIO_SECRET_KEY",
        hide_env_values = true,
        allow_hyphen_values = true,
        conflicts_with = "minio_secret_key_file"
    )]
    pub(crate) minio_secret_key: Option<Secret>,
    /// Read the MinIO secret key from this file (line breaks at its end are ignored).
    #[arg(long, value_name = "PATH", help_heading = HEADING)]
    pub(crate) minio_secret_key_file: Option<PathBuf>,
    /// A static shared token, sent as is on every connection and required of every incoming
    /// one: for tests (a captured token works forever; use --jwt-secret).
    #[arg(
        long,
        help_heading = HEADING,
        value_name = "T",
        env = "RGRID_TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true,
        conflicts_with_all = [
            "jwt_secret",
            "jwt_secret_file",
            "minio_access_key",
            "minio_secret_key",
            "minio_secret_key_file",
        ]
    )]
    pub(crate) token: Option<Secret>,
}

/// The credentials a node uses, read from the flags (and files).
#[derive(Debug)]
pub(crate) enum Auth {
    /// [`ManagerBuilder::jwt_secret`].
    Jwt(Secret),
    /// [`ManagerBuilder::minio_jwt`].
    Minio {
        access_key: String,
        secret_key: Secret,
    },
    /// [`ManagerBuilder::token`].
    Token(Secret),
}

/// The message for a node started without credentials.
const NO_AUTH: &str = "no authentication: give --jwt-secret SECRET, --jwt-secret-file PATH or \
RGRID_JWT_SECRET (recommended); --minio-access-key and --minio-secret-key (or \
--minio-secret-key-file, or RGRID_MINIO_ACCESS_KEY and RGRID_MINIO_SECRET_KEY) to join MinIO \
servers; or --token T / RGRID_TOKEN (for tests)";

impl AuthArgs {
    /// The one source given (clap already refused two), with secret files read.
    pub(crate) fn resolve(&self) -> Result<Auth, Failure> {
        if let Some(token) = &self.token {
            return Ok(Auth::Token(token.clone()));
        }
        if let Some(secret) = &self.jwt_secret {
            return Ok(Auth::Jwt(secret.clone()));
        }
        if let Some(path) = &self.jwt_secret_file {
            return Secret::read("--jwt-secret-file", path).map(Auth::Jwt);
        }
        let secret_key = match (&self.minio_secret_key, &self.minio_secret_key_file) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(path)) => Some(Secret::read("--minio-secret-key-file", path)?),
            (None, None) => None,
        };
        match (&self.minio_access_key, secret_key) {
            (Some(access_key), Some(secret_key)) => Ok(Auth::Minio {
                access_key: access_key.clone(),
                secret_key,
            }),
            (Some(_), None) => Err(Failure::Local(
                "--minio-access-key needs --minio-secret-key, --minio-secret-key-file or \
                 RGRID_MINIO_SECRET_KEY"
                    .into(),
            )),
            (None, Some(_)) => Err(Failure::Local(
                "--minio-secret-key needs --minio-access-key or RGRID_MINIO_ACCESS_KEY".into(),
            )),
            (None, None) => Err(Failure::Local(NO_AUTH.into())),
        }
    }
}

impl Auth {
    /// Sets these credentials on a manager being built. An empty secret or access key makes
    /// the build fail (with a message that quotes neither).
    pub(crate) fn apply(&self, builder: ManagerBuilder) -> ManagerBuilder {
        match self {
            Auth::Jwt(secret) => builder.jwt_secret(secret.bytes()),
            Auth::Minio {
                access_key,
                secret_key,
            } => builder.minio_jwt(access_key.clone(), secret_key.bytes()),
            // Made from a `String` by clap: the conversion is exact.
            Auth::Token(token) => builder.token(String::from_utf8_lossy(token.bytes())),
        }
    }

    /// Which kind of credentials, for the logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Auth::Jwt(_) => "jwt-secret",
            Auth::Minio { .. } => "minio",
            Auth::Token(_) => "token",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn local_message(r: Result<Auth, Failure>) -> String {
        match r {
            Err(Failure::Local(m)) => m,
            other => panic!("want a local failure, got {other:?}"),
        }
    }

    #[test]
    fn a_secret_is_redacted_in_debug_output() {
        let s = Secret::from("hunter2-secret".to_owned());
        assert_eq!(format!("{s:?}"), "<redacted>");
        let args = AuthArgs {
            jwt_secret: Some(s.clone()),
            minio_secret_key: Some(s.clone()),
            token: Some(s.clone()),
            ..AuthArgs::default()
        };
        let shown = format!("{args:?} {:?} {:?}", Auth::Jwt(s.clone()), Auth::Token(s));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    /// The authentication flags alone.
    #[derive(clap::Parser, Debug)]
    struct Flags {
        #[command(flatten)]
        auth: AuthArgs,
    }

    #[test]
    fn secrets_may_start_with_a_hyphen() {
        use clap::Parser;
        // Otherwise clap reports them as unknown flags, quoting them.
        let secret = |args: &[&str]| {
            let flags = Flags::try_parse_from(std::iter::once("rgrid").chain(args.iter().copied()));
            match flags.unwrap().auth.resolve().unwrap() {
                Auth::Jwt(s) | Auth::Token(s) | Auth::Minio { secret_key: s, .. } => s,
            }
        };
        let want = Secret::from("--secret-with-hyphens".to_owned());
        assert_eq!(secret(&["--jwt-secret", "--secret-with-hyphens"]), want);
        assert_eq!(secret(&["--token", "--secret-with-hyphens"]), want);
        assert_eq!(
            secret(&[
                "--minio-secret-key",
                "--secret-with-hyphens",
                "--minio-access-key",
                "k"
            ]),
            want
        );
    }

    #[test]
    fn each_source_resolves_to_its_kind() {
        let secret = || Some(Secret::from("s".to_owned()));
        let jwt = AuthArgs {
            jwt_secret: secret(),
            ..AuthArgs::default()
        };
        assert_eq!(jwt.resolve().unwrap().kind(), "jwt-secret");
        let minio = AuthArgs {
            minio_access_key: Some("minioadmin".into()),
            minio_secret_key: secret(),
            ..AuthArgs::default()
        };
        assert_eq!(minio.resolve().unwrap().kind(), "minio");
        let token = AuthArgs {
            token: secret(),
            ..AuthArgs::default()
        };
        assert_eq!(token.resolve().unwrap().kind(), "token");
    }

    #[test]
    fn missing_or_partial_credentials_are_refused_with_the_options_named() {
        let none = local_message(AuthArgs::default().resolve());
        for option in [
            "--jwt-secret",
            "--jwt-secret-file",
            "RGRID_JWT_SECRET",
            "--minio-access-key",
            "--minio-secret-key",
            "--token",
        ] {
            assert!(none.contains(option), "{none}");
        }
        let key_only = AuthArgs {
            minio_access_key: Some("minioadmin".into()),
            ..AuthArgs::default()
        };
        assert!(local_message(key_only.resolve()).contains("needs --minio-secret-key"));
        let secret_only = AuthArgs {
            minio_secret_key: Some(Secret::from("s".to_owned())),
            ..AuthArgs::default()
        };
        assert!(local_message(secret_only.resolve()).contains("needs --minio-access-key"));
    }

    #[test]
    fn secret_files_lose_their_final_line_breaks_and_must_not_be_empty() {
        let dir = std::env::temp_dir().join(format!("rgrid-cli-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, b"line one\nsecret-in-a-file\r\n\n").unwrap();
        let args = AuthArgs {
            jwt_secret_file: Some(file.clone()),
            ..AuthArgs::default()
        };
        match args.resolve().unwrap() {
            Auth::Jwt(s) => assert_eq!(s.bytes(), b"line one\nsecret-in-a-file"),
            other => panic!("{other:?}"),
        }
        let minio = AuthArgs {
            minio_access_key: Some("minioadmin".into()),
            minio_secret_key_file: Some(file.clone()),
            ..AuthArgs::default()
        };
        match minio.resolve().unwrap() {
            Auth::Minio { secret_key, .. } => {
                assert_eq!(secret_key.bytes(), b"line one\nsecret-in-a-file");
            }
            other => panic!("{other:?}"),
        }

        std::fs::write(&file, b"\r\n").unwrap();
        let m = local_message(args.resolve());
        assert!(
            m.contains("--jwt-secret-file") && m.contains("is empty"),
            "{m}"
        );
        let missing = AuthArgs {
            jwt_secret_file: Some(dir.join("no-such-file")),
            ..AuthArgs::default()
        };
        let m = local_message(missing.resolve());
        assert!(
            m.contains("cannot read") && m.contains("no-such-file"),
            "{m}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
