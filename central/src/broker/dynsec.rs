//! Driving Mosquitto's dynamic-security plug-in (`mosquitto_dynamic_security.so`, in Debian's
//! package), so stock Mosquitto enforces the same rules as the broker-auth backend.
//!
//! Central connects as the plug-in's admin client and publishes commands on
//! `$CONTROL/dynamic-security/v1`. Each device gets a client (its login and secret) and a role of
//! its own, `neosens-dev-<login>`, with its topics spelt out — Mosquitto 2.0.11 does not expand
//! `%u`/`%c` in dynamic-security ACLs. Default access is set to deny what no role allows.
//!
//! - At every connection (start, and after a broker restart) the whole registry is reconciled:
//!   idempotent commands, so running it twice changes nothing.
//! - Then each committed registry change is followed: new devices, and devices whose login,
//!   secret or enabled flag changed, are upserted (a disabled device is disabled, which
//!   disconnects it at once; a reset secret kicks the device off — disable, new password, enable
//!   — so it provisions again); a device changed otherwise (moved, renamed) gets its role's ACLs
//!   alone and keeps its connection; a deleted device is deleted. When the broker does not take
//!   every command of a change, a full reconciliation follows.
//! - Room, building or site changes move topics: they trigger a full reconcile.
//!
//! The plug-in rewrites its JSON file after each change, which suits a campus of a few thousand
//! devices; beyond, prefer the go-auth backend (docs/mosquitto.md).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use neosens_protocol::ids::DeviceId;
use neosens_runtime::mqtt::{Message, MqttHandle, Qos};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::model::EntityKind;
use crate::registry::{BrokerAccount, ChangeFollower, Registry};

/// Where commands go.
pub const CONTROL_TOPIC: &str = "$CONTROL/dynamic-security/v1";
/// Where answers come.
pub const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";
/// Role of central's own client: everything outside `$` topics.
pub const CENTRAL_ROLE: &str = "neosens-central";
/// Prefix of the per-device roles (and how central recognises its clients).
pub const DEVICE_ROLE_PREFIX: &str = "neosens-dev-";

/// Commands per message.
const CHUNK: usize = 100;
/// Errors that only say the command had nothing to do (or, for `getClient`, that the client is
/// free to create).
const HARMLESS: [&str; 5] = [
    "Client already exists",
    "Role already exists",
    "Client is already in this role",
    "Role is already in this client",
    "Client not found",
];

/// Whether a client of a `listClients`/`getClient` answer has one of central's device roles: the
/// mark of a client central created, the only ones it changes or deletes.
fn owned(client: &Value) -> bool {
    client["roles"].as_array().is_some_and(|roles| {
        roles.iter().any(|r| r["rolename"].as_str().is_some_and(|n| n.starts_with(DEVICE_ROLE_PREFIX)))
    })
}

fn role_of(login: &str) -> String {
    format!("{DEVICE_ROLE_PREFIX}{login}")
}

fn acls(topics: &[String]) -> Vec<Value> {
    topics
        .iter()
        .flat_map(|base| {
            [
                json!({"acltype": "publishClientSend", "topic": format!("{base}/+"), "allow": true}),
                json!({"acltype": "publishClientReceive", "topic": format!("{base}/+/command"), "allow": true}),
                json!({"acltype": "subscribePattern", "topic": format!("{base}/+/command"), "allow": true}),
            ]
        })
        .collect()
}

/// What central wrote of an account's client, kept in its `textdescription`: a hash of the
/// secret's keyed hash, the login and the enabled flag (nothing usable without central's key).
/// A reconciliation — central restarted, a new leader, the broker reconnected — leaves a client
/// that matches alone: the plug-in disconnects a client at every password or role command, and
/// a campus's devices must not all reconnect at once for nothing.
fn fingerprint(account: &BrokerAccount) -> String {
    let mut input = b"neosens-dynsec-1".to_vec();
    input.extend_from_slice(&account.secret_hash);
    input.push(u8::from(account.enabled));
    input.extend_from_slice(account.login.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    let hex: String = digest.as_ref()[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("neosens:{hex}")
}

/// Whether the broker's `client` is what `account` asks for (see [`fingerprint`]).
fn up_to_date(client: &Value, account: &BrokerAccount) -> bool {
    let role = role_of(&account.login);
    client["textdescription"].as_str() == Some(fingerprint(account).as_str())
        && client["disabled"].as_bool().unwrap_or(false) != account.enabled
        && client["roles"]
            .as_array()
            .is_some_and(|roles| roles.iter().any(|r| r["rolename"] == role.as_str()))
}

/// The role's ACLs alone (the plug-in applies them without disconnecting anyone).
fn acls_only(account: &BrokerAccount) -> Value {
    json!({"command": "modifyRole", "rolename": role_of(&account.login), "acls": acls(&account.topics)})
}

/// The commands that make the broker hold `account` as the registry does; `kick` first disconnects
/// the device (its secret changed). The password and client commands disconnect a connected
/// device anyway (the plug-in kicks at `setClientPassword` and `modifyClient`): they are for a
/// client that is new or not what central last sent.
fn upsert(account: &BrokerAccount, kick: bool) -> Vec<Value> {
    let role = role_of(&account.login);
    let fingerprint = fingerprint(account);
    let mut c = vec![
        json!({"command": "createRole", "rolename": role}),
        acls_only(account),
        json!({"command": "createClient", "username": account.login, "password": account.secret,
            "textdescription": fingerprint, "roles": [{"rolename": role}]}),
    ];
    if kick {
        c.push(json!({"command": "disableClient", "username": account.login}));
    }
    c.push(json!({"command": "setClientPassword", "username": account.login, "password": account.secret}));
    // The role list set whole (`addClientRole` answers an error when the client has it already).
    c.push(json!({"command": "modifyClient", "username": account.login, "textdescription": fingerprint,
        "roles": [{"rolename": role}]}));
    c.push(json!({"command": if account.enabled { "enableClient" } else { "disableClient" }, "username": account.login}));
    c
}

fn remove(login: &str) -> Vec<Value> {
    vec![
        json!({"command": "deleteClient", "username": login}),
        json!({"command": "deleteRole", "rolename": role_of(login)}),
    ]
}

/// A `correlationData` no other request carries: this process's own prefix (a late answer to
/// another replica's or an earlier run's request matches none) and a counter.
fn correlation() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        format!("neosens-{:x}-{:x}", std::process::id(), nanos.as_nanos() & 0xffff_ffff)
    });
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Whether `message` answers the request whose commands carried `id`.
fn answers_request(message: &Value, id: &str) -> bool {
    message["responses"].as_array().and_then(|r| r.first()).is_some_and(|r| r["correlationData"] == id)
}

/// Sends commands in chunks, each chunk answered before the next; returns the responses. Each
/// chunk's commands carry a `correlationData` of their own, and only the answer that carries it
/// back is taken: an answer that came too late for an earlier request is dropped, never read as
/// this one's.
async fn send(
    link: &MqttHandle,
    responses: &mut mpsc::Receiver<Message>,
    mut commands: Vec<Value>,
) -> Vec<Value> {
    let mut answers = Vec::new();
    for chunk in commands.chunks_mut(CHUNK) {
        let id = correlation();
        for command in chunk.iter_mut() {
            command["correlationData"] = Value::String(id.clone());
        }
        let body = json!({"commands": chunk}).to_string();
        if link.publish(CONTROL_TOPIC, body, Qos::AtLeastOnce, false).await.is_err() {
            return answers;
        }
        // Wait for the answer, but not for a connection that is gone (the plug-in kicks a client
        // whose roles change): everything is reconciled again at the next connection.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        // Checked at every pass: answers to other admins (the plug-in sends every answer to
        // every subscriber of the topic) must not keep the wait going.
        let parsed = loop {
            if !link.stats().connected() {
                break None;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                tracing::warn!(
                    "no answer from the dynamic-security plug-in (is it loaded, and central its admin?)"
                );
                break None;
            }
            let wake = (now + Duration::from_millis(100)).min(deadline);
            match tokio::time::timeout_at(wake, responses.recv()).await {
                Ok(Some(message)) => {
                    let parsed: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
                    if answers_request(&parsed, &id) {
                        break Some(parsed);
                    }
                    tracing::debug!("dynamic security: an answer to another request dropped");
                }
                Ok(None) => break None,
                Err(_) => {}
            }
        };
        let Some(parsed) = parsed else { return answers };
        for r in parsed["responses"].as_array().cloned().unwrap_or_default() {
            if let Some(error) = r["error"].as_str().filter(|e| !HARMLESS.contains(e)) {
                tracing::warn!(command = %r["command"], error, "dynamic security refused a command");
            }
            answers.push(r);
        }
    }
    answers
}

/// The commands every reconciliation starts with: access denied by default, and central's own
/// role with every right.
fn broker_defaults() -> Vec<Value> {
    vec![
        json!({"command": "setDefaultACLAccess", "acls": [
            {"acltype": "publishClientSend", "allow": false},
            {"acltype": "publishClientReceive", "allow": false},
            {"acltype": "subscribe", "allow": false},
            {"acltype": "unsubscribe", "allow": true}]}),
        json!({"command": "createRole", "rolename": CENTRAL_ROLE}),
        json!({"command": "modifyRole", "rolename": CENTRAL_ROLE, "acls": [
            {"acltype": "publishClientSend", "topic": "#", "allow": true},
            {"acltype": "publishClientReceive", "topic": "#", "allow": true},
            {"acltype": "subscribePattern", "topic": "#", "allow": true}]}),
    ]
}

/// Whether central's own client, `user`, has central's role in a `listClients` answer.
fn has_central_role(clients: &[Value], user: &str) -> bool {
    clients.iter().any(|c| {
        c["username"].as_str() == Some(user)
            && c["roles"].as_array().is_some_and(|roles| roles.iter().any(|r| r["rolename"] == CENTRAL_ROLE))
    })
}

/// What central last sent the broker of a device's client.
struct Held {
    login: String,
    secret_hash: [u8; 32],
    /// [`fingerprint`] of the account: the same one means the client needs no command that
    /// disconnects it.
    fingerprint: String,
}

impl Held {
    fn of(account: &BrokerAccount) -> Held {
        Held {
            login: account.login.clone(),
            secret_hash: account.secret_hash,
            fingerprint: fingerprint(account),
        }
    }
}

/// Whether every one of `commands` commands got an answer with no error that matters.
fn all_done(commands: usize, answers: &[Value]) -> bool {
    answers.len() == commands
        && answers.iter().all(|r| r["error"].as_str().is_none_or(|e| HARMLESS.contains(&e)))
}

/// How long after a failed reconciliation (the registry or the broker's client list not read)
/// it is tried again; doubled at each failure in a row, up to [`MAX_RETRY`].
const RETRY: Duration = Duration::from_secs(5);
/// The longest wait between reconciliations that keep failing.
const MAX_RETRY: Duration = Duration::from_secs(300);

struct Driver {
    registry: Arc<Registry>,
    link: MqttHandle,
    responses: mpsc::Receiver<Message>,
    central_user: String,
    /// What the broker holds, as last sent, per device.
    known: HashMap<DeviceId, Held>,
    /// Broker clients central did not create (the admin, operators' own accounts): never
    /// changed or deleted; a device whose login names one is left out, with a warning. Bounded
    /// by the broker's client list.
    foreign: HashSet<String>,
    /// When a reconciliation is due although the connection did not change: a change could not
    /// be read, or the broker did not take all of its commands (so `known` may be wrong for it).
    reconcile_at: Option<tokio::time::Instant>,
    /// The wait before the next try after a failed reconciliation.
    retry: Duration,
}

impl Driver {
    /// Schedules a reconciliation after the current back-off, and doubles it; returns the wait.
    fn retry_later(&mut self) -> Duration {
        let wait = self.retry;
        self.reconcile_at = Some(tokio::time::Instant::now() + wait);
        self.retry = (wait * 2).min(MAX_RETRY);
        wait
    }

    async fn reconcile(&mut self) {
        let accounts = match self.registry.broker_accounts(None) {
            Ok(a) => a,
            Err(e) => {
                let retry = self.retry_later();
                return tracing::error!(error = %e, retry_in_s = retry.as_secs(), "dynamic security: cannot read the registry");
            }
        };
        let listed =
            send(&self.link, &mut self.responses, vec![json!({"command": "listClients", "verbose": true})])
                .await;
        let Some(clients) = listed.first().and_then(|r| r["data"]["clients"].as_array()).cloned() else {
            let retry = self.retry_later();
            return tracing::warn!(
                retry_in_s = retry.as_secs(),
                "dynamic security: the broker's client list did not come"
            );
        };
        self.foreign = clients
            .iter()
            .filter(|c| !owned(c))
            .filter_map(|c| c["username"].as_str().map(str::to_owned))
            .collect();
        let mut commands = broker_defaults();
        if !has_central_role(&clients, &self.central_user) {
            // The plug-in disconnects a client whose roles change, to apply them: central will be
            // kicked, and the reconnection reconciles the devices.
            commands.push(json!({"command": "addClientRole", "username": self.central_user, "rolename": CENTRAL_ROLE, "priority": 100}));
            send(&self.link, &mut self.responses, commands).await;
            // The kick reconciles at the reconnection; should it not come, this does.
            self.retry_later();
            tracing::info!(user = %self.central_user, "dynamic security: central's role granted; reconnecting to apply it");
            return;
        }
        let accounts = self.without_foreign(accounts);
        // Clients of devices no longer in the registry (recognised by their role) are deleted.
        let logins: HashSet<&str> = accounts.iter().map(|a| a.login.as_str()).collect();
        for client in &clients {
            let Some(username) = client["username"].as_str() else { continue };
            if owned(client) && !logins.contains(username) {
                commands.extend(remove(username));
            }
        }
        let listed: HashMap<&str, &Value> =
            clients.iter().filter_map(|c| Some((c["username"].as_str()?, c))).collect();
        let mut unchanged = 0usize;
        for account in &accounts {
            if listed.get(account.login.as_str()).is_some_and(|c| up_to_date(c, account)) {
                unchanged += 1;
                commands.push(acls_only(account));
                continue;
            }
            let kick =
                self.known.get(&account.id).is_some_and(|held| held.secret_hash != account.secret_hash);
            commands.extend(upsert(account, kick));
        }
        let n = accounts.len();
        tracing::debug!(devices = n, unchanged, "dynamic security: reconciling");
        let count = commands.len();
        let answers = send(&self.link, &mut self.responses, commands).await;
        self.known = accounts.iter().map(|a| (a.id, Held::of(a))).collect();
        if !all_done(count, &answers) {
            // Lost chunks (a slow plug-in, a dropped link) leave clients `known` says are there.
            let retry = self.retry_later();
            return tracing::warn!(
                devices = n,
                commands = count,
                answered = answers.len(),
                retry_in_s = retry.as_secs(),
                "dynamic security: the broker did not take the whole reconciliation"
            );
        }
        self.reconcile_at = None;
        self.retry = RETRY;
        tracing::info!(devices = n, "dynamic security reconciled with the registry");
    }

    /// Asks the broker about the logins of `accounts` it has not had from central yet (one may
    /// name a client made since the last listing) and adds those central did not create to
    /// `foreign`; `false` when not every question was answered.
    async fn learn_foreign_logins(&mut self, accounts: &[BrokerAccount]) -> bool {
        let unseen: Vec<Value> = accounts
            .iter()
            .filter(|a| self.known.get(&a.id).is_none_or(|held| held.login != a.login))
            .map(|a| json!({"command": "getClient", "username": a.login}))
            .collect();
        if unseen.is_empty() {
            return true;
        }
        let count = unseen.len();
        let answers = send(&self.link, &mut self.responses, unseen).await;
        if answers.len() != count {
            return false;
        }
        for answer in answers {
            let client = &answer["data"]["client"];
            if let Some(username) = client["username"].as_str().filter(|_| !owned(client)) {
                self.foreign.insert(username.to_owned());
            }
        }
        true
    }

    /// `accounts` without those whose login names a client central did not create.
    fn without_foreign(&self, accounts: Vec<BrokerAccount>) -> Vec<BrokerAccount> {
        accounts
            .into_iter()
            .filter(|a| {
                let foreign = self.foreign.contains(&a.login) || a.login == self.central_user;
                if foreign {
                    tracing::warn!(device = %a.id, login = %a.login, "dynamic security: a broker client of this name exists that central did not create: left alone, the device cannot connect until it gets another login");
                }
                !foreign
            })
            .collect()
    }

    /// Follows the next changes (retried at the next poll when the log cannot be read).
    async fn follow(&mut self, follower: &mut ChangeFollower) {
        let changes = match follower.next().await {
            Ok(c) => c,
            Err(e) => return tracing::error!(error = %e, "dynamic security: cannot read the change log"),
        };
        if changes.touches(&[EntityKind::Site, EntityKind::Building, EntityKind::Room]) {
            follower.skip_to_now();
            return self.reconcile().await;
        }
        // Devices, and gateways (their accounts are keyed by their id's bytes).
        let devices: HashSet<DeviceId> = changes
            .keys_of(&[EntityKind::Device, EntityKind::Gateway])
            .into_iter()
            .map(DeviceId::from_bytes)
            .collect();
        if devices.is_empty() {
            return;
        }
        // Not read: nothing is sent (an empty list would delete every changed device's client);
        // a reconciliation reads them all again shortly.
        let accounts = match self.registry.broker_accounts(Some(&devices)) {
            Ok(accounts) => accounts,
            Err(e) => {
                let retry = self.retry_later();
                return tracing::error!(error = %e, retry_in_s = retry.as_secs(), "dynamic security: cannot read changed devices; reconciling later");
            }
        };
        if !self.learn_foreign_logins(&accounts).await {
            // Unanswered, a login could be an operator's client: nothing is sent blind.
            self.reconcile_at.get_or_insert_with(tokio::time::Instant::now);
            return tracing::warn!(
                "dynamic security: the broker did not say which logins are free; reconciling"
            );
        }
        let accounts = self.without_foreign(accounts);
        let mut commands = Vec::new();
        let present: HashSet<DeviceId> = accounts.iter().map(|a| a.id).collect();
        for id in devices.difference(&present) {
            if let Some(held) = self.known.remove(id) {
                commands.extend(remove(&held.login));
            }
        }
        for account in accounts {
            let previous = self.known.get(&account.id);
            // A change that leaves the login, the secret and the enabled flag as they were (a
            // move, a rename, a bulk operation) changes the role's ACLs alone: the password and
            // client commands of a full upsert would disconnect the device for nothing.
            if previous
                .is_some_and(|held| held.login == account.login && held.fingerprint == fingerprint(&account))
            {
                commands.push(acls_only(&account));
                continue;
            }
            let kick = previous.is_some_and(|held| held.secret_hash != account.secret_hash);
            if let Some(old) = previous.filter(|held| held.login != account.login) {
                commands.extend(remove(&old.login));
            }
            commands.extend(upsert(&account, kick));
            self.known.insert(account.id, Held::of(&account));
        }
        let count = commands.len();
        let answers = send(&self.link, &mut self.responses, commands).await;
        if !all_done(count, &answers) {
            // `known` now says what was sent, not what the broker holds: the next edit of a
            // device whose commands were lost would send its ACLs alone.
            tracing::warn!(
                commands = count,
                answered = answers.len(),
                "dynamic security: the broker did not take every change; reconciling"
            );
            self.reconcile_at.get_or_insert_with(tokio::time::Instant::now);
        }
    }
}

/// Keeps the broker's dynamic security in step with the registry until `shutdown`, while this
/// replica leads (one driver for the broker: see [`crate::leader`]). Taking the lead starts with
/// a full reconciliation, as a new broker connection does.
pub async fn run(
    registry: Arc<Registry>,
    link: MqttHandle,
    responses: mpsc::Receiver<Message>,
    central_user: String,
    mut leadership: crate::leader::Leadership,
    shutdown: CancellationToken,
) {
    if let Err(e) = link.subscribe(RESPONSE_TOPIC, Qos::AtLeastOnce).await {
        return tracing::error!(error = %e, "dynamic security: cannot subscribe to the plug-in's answers");
    }
    let mut driver = Driver {
        registry,
        link,
        responses,
        central_user,
        known: HashMap::new(),
        foreign: HashSet::new(),
        reconcile_at: None,
        retry: RETRY,
    };
    loop {
        // Not leading: the plug-in's answers to the leader's commands are not ours.
        while !leadership.is_leading() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = leadership.until(true) => {}
                answer = driver.responses.recv() => if answer.is_none() { return },
            }
        }
        tracing::info!("dynamic security: driving the broker (this replica leads)");
        if !drive(&mut driver, &mut leadership, &shutdown).await {
            return;
        }
        tracing::info!("dynamic security: no longer driving the broker (another replica leads)");
    }
}

/// Drives the broker until `shutdown` (`false`) or the lead is lost (`true`).
async fn drive(
    driver: &mut Driver,
    leadership: &mut crate::leader::Leadership,
    shutdown: &CancellationToken,
) -> bool {
    let mut follower = ChangeFollower::new(Arc::clone(&driver.registry), 50_000);
    // 0: reconcile at once (a new leader knows nothing of what the broker has).
    let mut seen_connects = 0;
    let mut poll = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = leadership.until(false) => return true,
            _ = poll.tick() => {}
            // When behind (a long log read in parts, or a failed read), the poll paces the rest.
            changed = follower.changed(), if !follower.behind() => if !changed { return false },
            // Answers to other admins' requests, read while idle, or they would fill the
            // channel and stall the link's reader.
            answer = driver.responses.recv() => {
                if answer.is_none() {
                    return false;
                }
                continue;
            }
        }
        let connects = driver.link.stats().connects();
        if !driver.link.stats().connected() {
            continue;
        }
        let due = driver.reconcile_at.is_some_and(|at| at <= tokio::time::Instant::now());
        if connects != seen_connects || due {
            // A new connection: the broker may have restarted on an old or empty file.
            seen_connects = connects;
            follower.skip_to_now();
            driver.reconcile().await;
        } else if follower.behind() {
            driver.follow(&mut follower).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_answer_carrying_the_request_id_is_taken() {
        let id = correlation();
        assert_ne!(correlation(), id, "every request has an id of its own");
        let ours = json!({"responses": [{"command": "listClients", "correlationData": id, "data": {}}]});
        assert!(answers_request(&ours, &id));
        for other in [
            json!({"responses": [{"command": "listClients", "correlationData": "neosens-1-2-3"}]}),
            json!({"responses": [{"command": "Unknown command", "error": "Payload not valid JSON"}]}),
            json!({"responses": []}),
            json!({"responses": "x"}),
            json!({"other": 1}),
            Value::Null,
        ] {
            assert!(!answers_request(&other, &id), "{other}");
        }
    }

    #[test]
    fn a_change_is_done_when_every_command_is_answered_without_a_real_error() {
        let ok = json!({"command": "modifyRole"});
        let harmless = json!({"command": "createRole", "error": "Role already exists"});
        let refused = json!({"command": "modifyClient", "error": "Role not found"});
        assert!(all_done(2, &[ok.clone(), harmless.clone()]));
        assert!(!all_done(3, &[ok.clone(), harmless]), "an unanswered command");
        assert!(!all_done(2, &[ok, refused]), "a refused command");
        assert!(all_done(0, &[]));
    }
}
