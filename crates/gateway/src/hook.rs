//! The pre-receive hook's line back to the gateway.
//!
//! `git receive-pack` runs the hook `slipwayd hook pre-receive` ([`client_main`]) before it
//! updates any ref. The hook connects to the gateway's Unix socket, sends the push id it got
//! in its environment, the ref updates from its stdin and git's quarantine directories, and
//! then copies what the gateway sends back to its stderr, which git relays to the pusher as
//! `remote:` lines while the build runs. The last frame is the hook's exit status: non-zero
//! rejects the push.
//!
//! Frames from the gateway are `[kind: u8][length: u32 BE][payload]`: kind 1 is output,
//! kind 2 the exit status (one byte).

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};

use serde::{Deserialize, Serialize};

pub(crate) const PUSH_ID_VAR: &str = "SLIPWAY_PUSH_ID";
pub(crate) const SOCKET_VAR: &str = "SLIPWAY_HOOK_SOCKET";
/// The environment git gives hooks that the gateway needs to read the pushed objects, which
/// are in quarantine until the hook accepts the push.
pub(crate) const GIT_OBJECT_VARS: &[&str] = &[
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_QUARANTINE_PATH",
];

pub(crate) const FRAME_OUTPUT: u8 = 1;
pub(crate) const FRAME_EXIT: u8 = 2;

/// What the hook tells the gateway.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HookRequest {
    pub(crate) push_id: String,
    pub(crate) updates: Vec<RefUpdate>,
    pub(crate) git_env: BTreeMap<String, String>,
}

/// One line of pre-receive's stdin: `<old> <new> <ref>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RefUpdate {
    pub(crate) old: String,
    pub(crate) new: String,
    pub(crate) name: String,
}

impl RefUpdate {
    pub(crate) fn parse(line: &str) -> Option<RefUpdate> {
        let mut words = line.split_whitespace();
        let (old, new, name) = (words.next()?, words.next()?, words.next()?);
        Some(RefUpdate {
            old: old.to_owned(),
            new: new.to_owned(),
            name: name.to_owned(),
        })
    }

    pub(crate) fn is_delete(&self) -> bool {
        self.new.bytes().all(|b| b == b'0')
    }
}

pub(crate) fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// `slipwayd hook pre-receive`: runs inside `git receive-pack`, talks to the gateway, and
/// returns the exit status for the hook. Blocking code: it is a short-lived child process.
pub fn client_main(hook: &str) -> u8 {
    match run_client(hook) {
        Ok(status) => status,
        Err(err) => {
            eprintln!("error: {err}");
            1
        }
    }
}

fn run_client(hook: &str) -> Result<u8, String> {
    if hook != "pre-receive" {
        return Err(format!(
            "unknown hook {hook:?}: slipwayd handles pre-receive only"
        ));
    }
    let var = |name: &str| {
        std::env::var(name)
            .map_err(|_| format!("{name} is not set: this hook runs only inside a push to Slipway"))
    };
    let push_id = var(PUSH_ID_VAR)?;
    let socket = var(SOCKET_VAR)?;
    let mut updates = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("cannot read the ref updates: {e}"))?;
        if let Some(update) = RefUpdate::parse(&line) {
            updates.push(update);
        }
    }
    let git_env = GIT_OBJECT_VARS
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|v| ((*name).to_owned(), v)))
        .collect();
    let request = HookRequest {
        push_id,
        updates,
        git_env,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(&socket)
        .map_err(|e| format!("cannot reach the Slipway gateway at {socket}: {e}"))?;
    let mut line = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| format!("cannot talk to the gateway: {e}"))?;
    let mut stderr = std::io::stderr().lock();
    loop {
        let mut header = [0u8; 5];
        if stream.read_exact(&mut header).is_err() {
            return Err(
                "the platform stopped during the push; nothing was released, push again".to_owned(),
            );
        }
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut payload = vec![0u8; len];
        stream
            .read_exact(&mut payload)
            .map_err(|e| format!("the gateway went away: {e}"))?;
        match header[0] {
            FRAME_OUTPUT => {
                // The pusher may be gone; keep reading so the gateway is not blocked.
                let _ = stderr.write_all(&payload).and_then(|()| stderr.flush());
            }
            FRAME_EXIT => return Ok(payload.first().copied().unwrap_or(1)),
            other => return Err(format!("unexpected frame {other} from the gateway")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_updates() {
        let update =
            RefUpdate::parse("0000000000000000000000000000000000000000 1a2b refs/heads/main")
                .unwrap();
        assert_eq!(update.name, "refs/heads/main");
        assert!(!update.is_delete());
        assert!(
            RefUpdate::parse("1a2b 0000000000000000000000000000000000000000 refs/heads/x")
                .unwrap()
                .is_delete()
        );
        assert_eq!(RefUpdate::parse("garbage"), None);
    }

    #[test]
    fn frames() {
        assert_eq!(frame(FRAME_EXIT, &[3]), vec![2, 0, 0, 0, 1, 3]);
        assert_eq!(frame(FRAME_OUTPUT, b"hi").len(), 7);
    }
}
