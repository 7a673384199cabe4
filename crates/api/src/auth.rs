//! Who is calling and what they may do: bearer tokens, password hashes, and the access
//! rule for apps.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use domain::TokenScope;
use rand::Rng;
use sha2::{Digest, Sha256};
pub(crate) use store::Need;
use store::{Access, ApiToken, App, TokenLimit, User};
use tokio::time::Instant;

use crate::{ApiError, ApiState};

/// Tokens start with this, so they are recognisable in a leaked log or a secret scanner.
const TOKEN_PREFIX: &str = "slp_";

/// A new API token: the prefix and 32 random bytes in hex. Only its hash is stored.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// How tokens are stored: SHA-256, hex. A token has 256 bits of entropy, so a fast hash
/// is enough and lets every request look its token up by index.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Argon2id with the crate's default parameters, as a PHC string. CPU- and memory-heavy
/// (19 MiB each): runs on the bounded hashing pool.
pub(crate) async fn hash_password(
    guard: &LoginGuard,
    password: String,
) -> Result<String, ApiError> {
    guard
        .hash(move || new_hash(password.as_bytes()).map_err(ApiError::internal))
        .await?
}

/// Checks a password against a stored hash. With no stored hash (no such user) it checks
/// against a fixed one, so that a missing user costs as much time as a wrong password.
pub(crate) async fn verify_password(
    guard: &LoginGuard,
    password: String,
    stored: Option<String>,
) -> Result<bool, ApiError> {
    guard
        .hash(move || {
            static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let dummy = DUMMY.get_or_init(|| new_hash(b"no such user").unwrap_or_default());
            let exists = stored.is_some();
            let hash = stored.unwrap_or_else(|| dummy.clone());
            let ok = matches(password.as_bytes(), &hash).map_err(ApiError::internal)?;
            Ok(exists && ok)
        })
        .await?
}

/// Checks a username and password, throttled per account and per address (the one check
/// behind `/v1/auth/login` and the dashboard's sign-in).
pub(crate) async fn sign_in(
    state: &ApiState,
    guard: &LoginGuard,
    username: &str,
    password: String,
    peer: Option<IpAddr>,
) -> Result<User, ApiError> {
    guard.attempt(username, peer)?;
    let found = state.store.user_with_password(username).await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    let ok = verify_password(guard, password, hash).await?;
    let user = user
        .filter(|_| ok)
        .ok_or_else(|| ApiError::Unauthorized("wrong username or password".to_owned()))?;
    guard.succeeded(username, peer);
    Ok(user)
}

thread_local! {
    /// Argon2's working memory, kept by each hashing thread: allocating and freeing 19 MiB
    /// per hash left the allocator holding a little more after each one.
    static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Argon2 of `password` with `salt` into `out`, in this thread's working memory.
fn argon2_into(
    argon: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        let needed = argon.params().block_count();
        if blocks.len() < needed {
            blocks.resize(needed, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut blocks[..needed])
    })
}

/// A new Argon2id hash (default parameters, random salt) as a PHC string.
fn new_hash(password: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let argon = Argon2::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt.decode_b64(&mut salt_bytes)?;
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        argon2_into(&argon, password, salt_raw, out).map_err(Into::into)
    })?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon.params())?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored` (compared in constant time).
fn matches(password: &[u8], stored: &str) -> Result<bool, argon2::password_hash::Error> {
    let parsed = PasswordHash::new(stored)?;
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let params = Params::try_from(&parsed)?;
    let argon = Argon2::new(algorithm, version, params);
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(argon2::password_hash::Error::PhcStringField);
    };
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt.decode_b64(&mut salt_bytes)?;
    let computed = Output::init_with(expected.len(), |out| {
        argon2_into(&argon, password, salt_raw, out).map_err(Into::into)
    })?;
    Ok(computed == expected)
}

/// How password hashing and login attempts are bounded.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Passwords hashed at once (each takes a core and 19 MiB).
    pub hashers: usize,
    /// Hashes that may wait for a hasher; past that, 503 with `Retry-After`.
    pub queue: usize,
    /// Login attempts on one account (from addresses it has not logged in from) before
    /// each further one must wait.
    pub free_per_account: u32,
    /// Login attempts from one address (IPv4, or IPv6 /64) before each further one must wait.
    pub free_per_address: u32,
    /// The first wait; it doubles with each further attempt.
    pub first_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
}

impl Default for LoginLimits {
    fn default() -> LoginLimits {
        LoginLimits {
            hashers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue: 32,
            free_per_account: 5,
            free_per_address: 20,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
        }
    }
}

/// The login guard: the bounded pool password hashes run on, and the throttles on login
/// attempts per account and per address. In memory: each API process throttles on its own,
/// and a restart forgets (the waits are short enough that this costs an attacker little).
#[derive(Debug)]
pub(crate) struct LoginGuard {
    /// Where hashes wait for one of the pool's threads; full means busy.
    pool: SyncSender<Job>,
    accounts: Throttle<String>,
    addresses: Throttle<u128>,
    /// Account and address pairs that logged in: they skip the account's throttle, so that
    /// guessing at someone's password does not lock them out of their own account.
    known: Mutex<HashSet<(String, u128)>>,
}

/// How many entries a throttle or the known pairs keep at most: a bound on memory.
const MAX_ENTRIES: usize = 100_000;

impl LoginGuard {
    pub(crate) fn new(limits: LoginLimits) -> LoginGuard {
        LoginGuard {
            pool: hashing_pool(limits.hashers.max(1), limits.queue),
            accounts: Throttle::new(limits.free_per_account, limits),
            addresses: Throttle::new(limits.free_per_address, limits),
            known: Mutex::new(HashSet::new()),
        }
    }

    /// Runs `work` on the hashing pool, or refuses at once when too many wait for it.
    async fn hash<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // Nobody waits any more if the request was cut off; the work is done anyway.
            let _ = done.send(work());
        });
        self.pool.try_send(job).map_err(|err| match err {
            TrySendError::Full(_) => ApiError::Busy {
                message: "the server is busy checking passwords: try again in a moment".to_owned(),
                retry_after: 1,
            },
            TrySendError::Disconnected(_) => ApiError::internal("the hashing pool has stopped"),
        })?;
        result.await.map_err(ApiError::internal)
    }

    /// Counts a login attempt for `username` from `peer`, or refuses it with how long to wait.
    pub(crate) fn attempt(&self, username: &str, peer: Option<IpAddr>) -> Result<(), ApiError> {
        let now = Instant::now();
        let address = address_key(peer);
        let account = username.to_lowercase();
        let known = self
            .known
            .lock()
            .expect("never poisoned")
            .contains(&(account.clone(), address));
        let account_wait = if known {
            None
        } else {
            self.accounts.wait(&account, now)
        };
        let address_wait = self.addresses.wait(&address, now);
        // Every attempt counts against its address, refused ones too: an address that
        // keeps hammering waits longer and longer.
        self.addresses.count(address, now);
        if account_wait.is_none() && address_wait.is_none() {
            if !known {
                self.accounts.count(account, now);
            }
            return Ok(());
        }
        let wait = account_wait
            .into_iter()
            .chain(self.addresses.wait(&address, now))
            .max()
            .unwrap_or_default();
        let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Err(ApiError::TooManyRequests {
            message: format!(
                "too many login attempts: wait {retry_after}s and try again, or ask an admin"
            ),
            retry_after,
        })
    }

    /// The password was right: the account's count starts over, this attempt is given back
    /// to the address, and the pair is known from now on.
    pub(crate) fn succeeded(&self, username: &str, peer: Option<IpAddr>) {
        let address = address_key(peer);
        let account = username.to_lowercase();
        self.accounts.forget(&account);
        self.addresses.give_back(&address);
        let mut known = self.known.lock().expect("never poisoned");
        if known.len() >= MAX_ENTRIES {
            known.clear();
        }
        known.insert((account, address));
    }
}

/// The throttle's key for an address: IPv4 as is, IPv6 by its /64 (one client's usual
/// share). Without an address (tests calling the router directly) all share one key.
fn address_key(peer: Option<IpAddr>) -> u128 {
    match peer.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => u128::from(u32::from(v4)),
        Some(IpAddr::V6(v6)) => (u128::from(v6) >> 64) << 64 | 1 << 32,
        None => u128::MAX,
    }
}

/// A password hash to compute, with where its result goes.
type Job = Box<dyn FnOnce() + Send>;

/// Starts `threads` threads that take hashes from a queue of `queue` places. Argon2 takes
/// 19 MiB for each hash, and the allocator keeps it for the thread that used it: a fixed
/// set of threads bounds that memory, where the blocking pool's many threads did not.
/// The threads end when the guard (the queue's sender) is dropped.
fn hashing_pool(threads: usize, queue: usize) -> SyncSender<Job> {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Job>(queue);
    let receiver = Arc::new(Mutex::new(receiver));
    for i in 0..threads {
        let receiver = Arc::clone(&receiver);
        let spawned = std::thread::Builder::new()
            .name(format!("password-hash-{i}"))
            .spawn(move || {
                loop {
                    let job = receiver.lock().expect("never poisoned").recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "cannot start a password hashing thread");
        }
    }
    sender
}

/// Attempts per key, with a wait that doubles with each attempt past the free ones.
/// Attempts count when they start (so concurrent guesses cannot all slip through before
/// the first fails); a right password gives its attempt back.
#[derive(Debug)]
struct Throttle<K> {
    free: u32,
    limits: LoginLimits,
    entries: Mutex<HashMap<K, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    attempts: u32,
    /// No attempt before this.
    until: Instant,
    last: Instant,
}

impl<K: std::hash::Hash + Eq + Clone> Throttle<K> {
    fn new(free: u32, limits: LoginLimits) -> Throttle<K> {
        Throttle {
            free,
            limits,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` must wait, if at all.
    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        let entries = self.entries.lock().expect("never poisoned");
        let entry = entries.get(key)?;
        // A request that took its `now` before another counted can see a wait a moment past
        // the longest: it is never told more than that.
        (entry.until > now).then(|| (entry.until - now).min(self.limits.max_delay))
    }

    fn count(&self, key: K, now: Instant) {
        let mut entries = self.entries.lock().expect("never poisoned");
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            // Forget what has gone quiet; if that is not enough, forget the harmless.
            let quiet = self.limits.max_delay;
            entries.retain(|_, e| now.duration_since(e.last) < quiet);
            if entries.len() >= MAX_ENTRIES {
                let free = self.free;
                entries.retain(|_, e| e.attempts > free);
            }
        }
        let entry = entries.entry(key).or_insert(Entry {
            attempts: 0,
            until: now,
            last: now,
        });
        // A key that has been quiet for the longest wait starts over.
        if now.duration_since(entry.last) >= self.limits.max_delay {
            entry.attempts = 0;
        }
        entry.attempts += 1;
        entry.last = now;
        if entry.attempts > self.free {
            let doublings = (entry.attempts - self.free - 1).min(20);
            let delay = self
                .limits
                .first_delay
                .saturating_mul(1 << doublings)
                .min(self.limits.max_delay);
            entry.until = now + delay;
        }
    }

    fn forget(&self, key: &K) {
        self.entries.lock().expect("never poisoned").remove(key);
    }

    fn give_back(&self, key: &K) {
        let mut entries = self.entries.lock().expect("never poisoned");
        if let Some(entry) = entries.get_mut(key) {
            entry.attempts = entry.attempts.saturating_sub(1);
            if entry.attempts <= self.free {
                entry.until = entry.last;
            }
        }
    }
}

/// The authenticated caller of a route that is not about one app. Rejects with 401 when
/// the token is missing or unknown, and a token limited to one app with 403: a route takes
/// scoped tokens only by asking for an [`AppCaller`], so one nobody thought about is closed
/// to them.
#[derive(Debug, Clone)]
pub(crate) struct CurrentUser {
    pub(crate) user: User,
    /// The hash of the token this request used (logout revokes it).
    pub(crate) token_hash: String,
    pub(crate) token_id: uuid::Uuid,
}

/// The authenticated caller of a route about one app: what it may do is checked by
/// [`authorize`]. Only app routes take it.
#[derive(Debug, Clone)]
pub(crate) struct AppCaller {
    pub(crate) user: User,
    /// The one app the token is limited to, and what it may do there.
    pub(crate) limit: Option<TokenLimit>,
}

/// The user and token behind the request's bearer token, or 401.
async fn authenticate(
    parts: &Parts,
    state: &ApiState,
) -> Result<(User, ApiToken, String), ApiError> {
    let token = bearer_token(parts)?.ok_or_else(|| {
        ApiError::Unauthorized("missing API token: log in with `slip login URL`".to_owned())
    })?;
    let token_hash = token_hash(token);
    let (user, token) = state
        .store
        .user_by_token(&token_hash)
        .await?
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "invalid or revoked API token: log in again with `slip login URL`".to_owned(),
            )
        })?;
    if token.expired(time::OffsetDateTime::now_utc()) {
        // Gone for good: the next request with it is simply unknown.
        state.store.delete_token(&token_hash).await?;
        // A login's token is renewed by logging in; a made one (for CI) by making another.
        let message = match &token.description {
            None => "your session expired: log in again with `slip login`".to_owned(),
            Some(description) => format!(
                "the API token {description:?} expired: make a new one with `slip tokens:create`"
            ),
        };
        return Err(ApiError::Unauthorized(message));
    }
    Ok((user, token, token_hash))
}

impl FromRequestParts<ApiState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let (user, token, token_hash) = authenticate(parts, state).await?;
        if let Some(limit) = token.limit {
            return Err(ApiError::Forbidden(format!(
                "this token is limited to {}: it cannot do this; use your own login",
                limit.app
            )));
        }
        Ok(CurrentUser {
            user,
            token_hash,
            token_id: token.id,
        })
    }
}

impl FromRequestParts<ApiState> for AppCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let (user, token, _) = authenticate(parts, state).await?;
        Ok(AppCaller {
            user,
            limit: token.limit,
        })
    }
}

impl OptionalFromRequestParts<ApiState> for CurrentUser {
    type Rejection = ApiError;

    /// No `Authorization` header is anonymous; a bad token is still refused.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Option<Self>, Self::Rejection> {
        if bearer_token(parts)?.is_none() {
            return Ok(None);
        }
        <CurrentUser as FromRequestParts<ApiState>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

fn bearer_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| {
        ApiError::Unauthorized("the Authorization header is not valid text".to_owned())
    })?;
    let token = value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized("expected `Authorization: Bearer <token>`".to_owned())
        })?;
    Ok(Some(token))
}

/// Loads the app and checks that `caller` may do what `need` says. Admins may do anything.
/// Someone with no access to the app is told it does not exist, word for word as for an
/// app that does not: which apps exist is nobody else's business. Handlers call this
/// before they look at their input, so a stranger learns nothing from validation either.
pub(crate) async fn authorize(
    state: &ApiState,
    caller: &AppCaller,
    app: &str,
    need: Need,
) -> Result<App, ApiError> {
    let Some(limit) = &caller.limit else {
        return authorize_access(state, &caller.user, app, need)
            .await
            .map(|(app, _)| app);
    };
    // The token's user knows both names: saying so leaks nothing.
    let wrong_app =
        || ApiError::Forbidden(format!("this token may only be used for {}", limit.app));
    if app != limit.app {
        return Err(wrong_app());
    }
    if !scope_permits(limit.scope, need) {
        return Err(ApiError::Forbidden(format!(
            "this token may only {} {}: it cannot do this; use your own login",
            match limit.scope {
                TokenScope::Deploy => "read and deploy",
                TokenScope::Read => "read",
            },
            limit.app
        )));
    }
    // The user's own access still counts: a collaborator removed from the app loses it
    // for their tokens too.
    let (found, _) = authorize_access(state, &caller.user, app, need).await?;
    if found.id != limit.app_id {
        return Err(wrong_app());
    }
    Ok(found)
}

/// What a scoped token may do on its app: `deploy` reads and deploys, `read` only reads.
fn scope_permits(scope: TokenScope, need: Need) -> bool {
    match scope {
        TokenScope::Deploy => matches!(need, Need::Read | Need::Deploy),
        TokenScope::Read => need == Need::Read,
    }
}

/// [`authorize`], also saying how `user` relates to the app (the dashboard shows only the
/// controls the viewer may use).
pub(crate) async fn authorize_access(
    state: &ApiState,
    user: &User,
    app: &str,
    need: Need,
) -> Result<(App, Access), ApiError> {
    let no_such_app =
        || ApiError::NotFound(format!("no app named {app}: see yours with `slip apps`"));
    let (app, access) = match state.store.app_access(app, user).await {
        Ok(found) => found,
        Err(store::Error::NotFound(_)) => return Err(no_such_app()),
        Err(err) => return Err(err.into()),
    };
    if access.permits(user.admin, need) {
        return Ok((app, access));
    }
    if access == Access::None {
        return Err(no_such_app());
    }
    Err(ApiError::Forbidden(format!(
        "only the owner of {} or an admin may do that",
        app.name
    )))
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    use super::*;

    #[test]
    fn hashes_are_standard_argon2id_phc_strings_both_ways() {
        let ours = new_hash(b"correct horse").unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong horse", &parsed)
                .is_err()
        );

        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(matches(b"correct horse", &theirs).unwrap());
        assert!(!matches(b"wrong horse", &theirs).unwrap());
        assert!(matches(b"x", "not a hash").is_err());
    }
}
