//! What a client may ask the gateway to run: `git-receive-pack` (push) or `git-upload-pack`
//! (clone, fetch) on one app's repository, and nothing else.

use domain::AppName;

/// The git service a command asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `git push`: needs the right to deploy the app.
    ReceivePack,
    /// `git clone` and `git fetch`: needs the right to read the app.
    UploadPack,
}

impl Service {
    pub fn git_subcommand(self) -> &'static str {
        match self {
            Service::ReceivePack => "receive-pack",
            Service::UploadPack => "upload-pack",
        }
    }
}

/// A parsed exec request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitCommand {
    pub service: Service,
    pub app: AppName,
}

/// Parses the command line a git client sends over SSH, such as `git-receive-pack '/demo.git'`.
///
/// The repository path may be quoted, may start with one `/` (URLs) or not (scp-style remotes),
/// and may end in `.git`; what remains must be an app name, so `../x`, nested paths and
/// absolute paths elsewhere are refused. The message says what to do instead.
pub fn parse(command: &[u8]) -> Result<GitCommand, String> {
    let command =
        std::str::from_utf8(command).map_err(|_| "the command is not valid UTF-8".to_owned())?;
    let (program, argument) = command
        .trim()
        .split_once(' ')
        .unwrap_or((command.trim(), ""));
    let service = match program {
        "git-receive-pack" => Service::ReceivePack,
        "git-upload-pack" => Service::UploadPack,
        _ => {
            return Err(format!(
                "Slipway runs no commands but git's: push with `git push slipway main` (refused: {:?})",
                truncate(command)
            ));
        }
    };
    let argument = argument.trim();
    let path = argument
        .strip_prefix('\'')
        .and_then(|a| a.strip_suffix('\''))
        .unwrap_or(argument);
    let invalid = || {
        format!(
            "invalid repository path {:?}: use <app>.git, as `slip create` set it up",
            truncate(path)
        )
    };
    let name = path.strip_prefix('/').unwrap_or(path);
    let name = name.strip_suffix('/').unwrap_or(name);
    let name = name.strip_suffix(".git").unwrap_or(name);
    if name.contains(['/', '\'', '\\']) || name.is_empty() {
        return Err(invalid());
    }
    let app = AppName::parse(name).map_err(|_| invalid())?;
    Ok(GitCommand { service, app })
}

fn truncate(text: &str) -> String {
    text.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    #[track_caller]
    fn check(input: &str, expect: Expect) {
        let actual = match parse(input.as_bytes()) {
            Ok(cmd) => format!("{:?} {}", cmd.service, cmd.app),
            Err(err) => format!("error: {err}"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn accepts_what_git_sends() {
        check("git-receive-pack '/demo.git'", expect!["ReceivePack demo"]);
        check("git-receive-pack 'demo.git'", expect!["ReceivePack demo"]);
        check("git-receive-pack '/demo'", expect!["ReceivePack demo"]);
        check(
            "git-upload-pack '/my-app.git/'",
            expect!["UploadPack my-app"],
        );
        check("git-upload-pack demo.git", expect!["UploadPack demo"]);
    }

    #[test]
    fn refuses_everything_else() {
        check(
            "bash",
            expect![[
                r#"error: Slipway runs no commands but git's: push with `git push slipway main` (refused: "bash")"#
            ]],
        );
        check(
            "git-receive-pack '../x.git'",
            expect![[
                r#"error: invalid repository path "../x.git": use <app>.git, as `slip create` set it up"#
            ]],
        );
        check(
            "git-receive-pack '/srv/other/demo.git'",
            expect![[
                r#"error: invalid repository path "/srv/other/demo.git": use <app>.git, as `slip create` set it up"#
            ]],
        );
        check(
            "git-receive-pack '//demo.git'",
            expect![[
                r#"error: invalid repository path "//demo.git": use <app>.git, as `slip create` set it up"#
            ]],
        );
        check(
            "git-receive-pack 'Demo.git'",
            expect![[
                r#"error: invalid repository path "Demo.git": use <app>.git, as `slip create` set it up"#
            ]],
        );
        check(
            "git-receive-pack ''",
            expect![[
                r#"error: invalid repository path "": use <app>.git, as `slip create` set it up"#
            ]],
        );
        check(
            "git-receive-pack 'demo.git'; rm -rf /",
            expect![[
                r#"error: invalid repository path "'demo.git'; rm -rf /": use <app>.git, as `slip create` set it up"#
            ]],
        );
        check(
            "git-upload-archive 'demo.git'",
            expect![[
                r#"error: Slipway runs no commands but git's: push with `git push slipway main` (refused: "git-upload-archive 'demo.git'")"#
            ]],
        );
        check(
            "scp -t /etc",
            expect![[
                r#"error: Slipway runs no commands but git's: push with `git push slipway main` (refused: "scp -t /etc")"#
            ]],
        );
    }
}
