//! Dashboard sign-in against a real OpenLDAP server (`slapd`, started by the test on free
//! loopback ports with its own test directory and certificates): people are found with a
//! service account, bound with their own password over StartTLS and over LDAPS, and get the role
//! of their groups; the local `admin` stays a break-glass account while the directory is down;
//! refusals and sign-ins are in the audit trail.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use common::{ADMIN, BIN, api};
use neosens_runtime::testing::slapd::{ROOT_DN, ROOT_PASSWORD, SUFFIX, Slapd};
use neosens_runtime::testing::{ServiceProcess, http_json};
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "break-glass admin pw";

fn person(uid: &str, password: &str) -> String {
    format!(
        "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {password}\n\n"
    )
}

fn group(cn: &str, members: &[&str]) -> String {
    let members: String = members.iter().map(|m| format!("member: uid={m},ou=people,{SUFFIX}\n")).collect();
    format!("dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\n{members}\n")
}

fn directory() -> String {
    [
        format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n"
        ),
        format!("dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n"),
        format!("dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n"),
        person("alice", "alice directory pw"),
        person("bob", "bob directory pw"),
        person("carol", "carol directory pw"),
        person("admin", "not the local admin"),
        person("dave", "dave directory pw"),
        group("neosens-operators", &["alice"]),
        group("neosens-admins", &["bob"]),
        group("staff", &["alice", "bob", "carol"]),
        group("carcassonne-operators", &["dave"]),
    ]
    .concat()
}

/// Central with `[ldap]` pointing at `url`, searching with the root account.
fn central(data: &Path, url: &str, starttls: bool, slapd: &Slapd) -> ServiceProcess {
    let config = data.join("central.toml");
    let secret = data.join("ldap-password");
    std::fs::write(&secret, format!("{ROOT_PASSWORD}\n")).unwrap();
    std::fs::write(
        &config,
        format!(
            r#"[ldap]
url = "{url}"
starttls = {starttls}
ca_file = "{ca}"
bind_dn = "{ROOT_DN}"
bind_password_file = "{secret}"
base_dn = "ou=people,{SUFFIX}"
group_base_dn = "ou=groups,{SUFFIX}"
[[ldap.groups]]
dn = "cn=neosens-operators, ou=groups, {SUFFIX}"
role = "operator"
[[ldap.groups]]
dn = "CN=neosens-admins,OU=groups,{SUFFIX}"
role = "admin"
[[ldap.groups]]
dn = "cn=carcassonne-operators,ou=groups,{SUFFIX}"
role = "operator"
sites = ["carcassonne"]
"#,
            ca = slapd.ca_file().display(),
            secret = secret.display(),
        ),
    )
    .unwrap();
    let mut env: HashMap<String, String> = common::store_env(&data.join("data")).into_iter().collect();
    env.extend([
        ("NEOSENS_HTTP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_DATA_DIR".to_owned(), data.join("data").to_string_lossy().into_owned()),
        ("NEOSENS_ADMIN_TOKEN".to_owned(), ADMIN.to_owned()),
        ("NEOSENS_ADMIN_PASSWORD".to_owned(), ADMIN_PASSWORD.to_owned()),
        ("NEOSENS_EMBEDDED_MQTT_BIND".to_owned(), "127.0.0.1:0".to_owned()),
    ]);
    ServiceProcess::spawn(Path::new(BIN), &["--config", &config.to_string_lossy()], &env)
}

fn sign_in(addr: SocketAddr, user: &str, password: &str) -> (u16, Value) {
    http_json(addr, "POST", "/api/v1/session", None, Some(&json!({"username": user, "password": password})))
}

fn user(addr: SocketAddr, name: &str) -> Value {
    let (_, users) = api(addr, "GET", "/api/v1/users", None);
    users["items"].as_array().unwrap().iter().find(|u| u["username"] == name).cloned().unwrap_or(Value::Null)
}

#[test]
fn directory_people_sign_in_with_the_role_of_their_groups() {
    let mut slapd = Slapd::start(&directory());
    let dir = tempfile::tempdir().unwrap();
    let central = central(dir.path(), &slapd.ldap_url(), true, &slapd);
    let addr = central.addr("http");

    let (status, me) = sign_in(addr, "alice", "alice directory pw");
    assert_eq!(status, 200, "{me}");
    assert_eq!((me["username"].as_str(), me["role"].as_str()), (Some("alice"), Some("operator")));
    assert_eq!(
        (user(addr, "alice")["source"].as_str(), user(addr, "alice")["role"].as_str()),
        (Some("directory"), Some("operator"))
    );
    let (status, me) = sign_in(addr, "bob", "bob directory pw");
    assert_eq!((status, me["role"].as_str()), (200, Some("admin")), "{me}");

    // Wrong, empty or injected: refused alike.
    for (name, password) in [
        ("alice", "wrong"),
        ("alice", ""),
        ("nobody", "x"),
        ("*", "alice directory pw"),
        ("alice)(uid=*", "alice directory pw"),
    ] {
        let (status, body) = sign_in(addr, name, password);
        assert_eq!(status, 401, "{name:?} / {password:?}: {body}");
    }
    // The right password, but no group with a role.
    let (status, body) = sign_in(addr, "carol", "carol directory pw");
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("no directory group"), "{body}");
    assert_eq!(user(addr, "carol"), Value::Null, "nobody is created without a role");

    // The local admin is checked here, never against the directory's `admin`.
    assert_eq!(sign_in(addr, "admin", "not the local admin").0, 401);
    assert_eq!(sign_in(addr, "admin", ADMIN_PASSWORD).0, 200);

    // The trail: who signed in where from, and why carol was refused.
    let (_, trail) = api(addr, "GET", "/api/v1/audit?action=session.", None);
    let entries = trail["items"].as_array().unwrap();
    let alice =
        entries.iter().find(|e| e["actor"]["name"] == "alice" && e["action"] == "session.sign_in").unwrap();
    assert!(alice["detail"].as_str().unwrap().ends_with("(directory)"), "{alice}");
    let carol = entries.iter().find(|e| e["actor"]["name"] == "carol").unwrap();
    assert_eq!(carol["action"], "session.sign_in_failed");
    assert!(carol["detail"].as_str().unwrap().contains("no directory group"), "{carol}");
    let (_, created) = api(addr, "GET", "/api/v1/audit?action=user.create&target=alice", None);
    assert_eq!(created["items"][0]["actor"]["name"], "alice", "{created}");

    // A site group: its role on its site only — once the site exists.
    let (status, body) = sign_in(addr, "dave", "dave directory pw");
    assert_eq!(status, 403, "a group naming an unknown site signs nobody in: {body}");
    let site = json!({"slug": "carcassonne", "name": "Carcassonne"});
    assert_eq!(api(addr, "POST", "/api/v1/sites", Some(site)).0, 201);
    let (status, me) = sign_in(addr, "dave", "dave directory pw");
    assert_eq!(
        (status, me["role"].as_str(), &me["sites"]),
        (200, Some("operator"), &json!(["carcassonne"])),
        "{me}"
    );
    assert_eq!(user(addr, "dave")["sites"], json!(["carcassonne"]));
    assert_eq!(user(addr, "alice")["sites"], json!([]), "campus-wide groups give the whole campus");

    // The directory down: its people cannot sign in, the break-glass admin can.
    slapd.stop();
    let (status, body) = sign_in(addr, "alice", "alice directory pw");
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("directory_unavailable")), "{body}");
    assert_eq!(sign_in(addr, "admin", ADMIN_PASSWORD).0, 200);
}

#[test]
fn ldaps_and_a_group_change_taking_effect_at_the_next_sign_in() {
    let slapd = Slapd::start(&directory());
    let dir = tempfile::tempdir().unwrap();
    let central = central(dir.path(), &slapd.ldaps_url(), false, &slapd);
    let addr = central.addr("http");
    let (status, me) = sign_in(addr, "alice", "alice directory pw");
    assert_eq!((status, me["role"].as_str()), (200, Some("operator")), "{me}");

    // Alice joins the admins in the directory.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let settings = ldap3::LdapConnSettings::new().set_no_tls_verify(true);
        let url = format!("ldap://127.0.0.1:{}", slapd.ldap_port);
        let (conn, mut ldap) = ldap3::LdapConnAsync::with_settings(settings, &url).await.unwrap();
        ldap3::drive!(conn);
        ldap.simple_bind(ROOT_DN, ROOT_PASSWORD).await.unwrap().success().unwrap();
        let member = format!("uid=alice,ou=people,{SUFFIX}");
        let add = vec![ldap3::Mod::Add("member", std::collections::HashSet::from([member.as_str()]))];
        ldap.modify(&format!("cn=neosens-admins,ou=groups,{SUFFIX}"), add).await.unwrap().success().unwrap();
        ldap.unbind().await.unwrap();
    });
    let (status, me) = sign_in(addr, "alice", "alice directory pw");
    assert_eq!((status, me["role"].as_str()), (200, Some("admin")), "{me}");
    let (_, changed) = api(addr, "GET", "/api/v1/audit?action=user.update&target=alice", None);
    assert_eq!(
        changed["items"][0]["changes"],
        json!([{"field": "role", "before": "operator", "after": "admin"}])
    );
}
