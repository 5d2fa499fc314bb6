use super::*;
use crate::model::{ApiToken, Role, TokenId, User, UserId};

fn user(name: &str, role: Role, hash: &str) -> Record {
    Record::User(User {
        id: UserId(uuid::Uuid::from_bytes([7; 16])),
        username: name.into(),
        password_hash: hash.into(),
        role,
        created_at: Timestamp(1),
        sites: Vec::new(),
    })
}

fn actor() -> Actor {
    Actor::User { id: None, name: "alice".into() }
}

#[test]
fn an_update_lists_only_the_fields_that_changed_and_hides_secrets() {
    let before = user("bob", Role::Viewer, "$argon2id$old");
    let after = user("bob", Role::Operator, "$argon2id$new");
    let e =
        record_entry(EntityKind::User, [7; 16], Some(&before), Some(&after), None, Timestamp(5), &actor());
    assert_eq!(e.action, "user.update");
    assert_eq!(e.target, "bob");
    assert_eq!(e.target_kind, "user");
    let fields: Vec<&str> = e.changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["password_hash", "role"]);
    assert_eq!((e.changes[1].before.as_str(), e.changes[1].after.as_str()), ("\"viewer\"", "\"operator\""));
    assert_eq!((e.changes[0].before.as_str(), e.changes[0].after.as_str()), (SECRET, SECRET));
    assert!(!format!("{e:?}").contains("argon2id"), "no hash in the entry: {e:?}");
}

#[test]
fn creation_and_deletion_show_every_field_against_null() {
    let token = Record::Token(ApiToken {
        id: TokenId(uuid::Uuid::from_bytes([3; 16])),
        name: "ci".into(),
        role: Role::Admin,
        hash: [9; 32],
        created_at: Timestamp(2),
        sites: Vec::new(),
    });
    let created = record_entry(EntityKind::Token, [3; 16], None, Some(&token), None, Timestamp(5), &actor());
    assert_eq!(created.action, "token.create");
    assert!(created.changes.iter().all(|c| c.before == "null"));
    let hash = created.changes.iter().find(|c| c.field == "hash").unwrap();
    assert_eq!(hash.after, SECRET);
    let deleted = record_entry(EntityKind::Token, [3; 16], Some(&token), None, None, Timestamp(6), &actor());
    assert_eq!(deleted.action, "token.delete");
    assert_eq!(deleted.target, "ci");
    assert!(deleted.changes.iter().all(|c| c.after == "null"));
}

#[test]
fn a_named_action_applies_to_its_own_kind_only() {
    let r = user("bob", Role::Viewer, "h");
    let own = record_entry(
        EntityKind::User,
        [7; 16],
        Some(&r),
        Some(&r),
        Some("user.sign_up"),
        Timestamp(5),
        &actor(),
    );
    assert_eq!(own.action, "user.sign_up");
    let other = record_entry(
        EntityKind::User,
        [7; 16],
        Some(&r),
        Some(&r),
        Some("device.provision"),
        Timestamp(5),
        &actor(),
    );
    assert_eq!(other.action, "user.update");
    let prefix =
        record_entry(EntityKind::User, [7; 16], Some(&r), Some(&r), Some("users.x"), Timestamp(5), &actor());
    assert_eq!(prefix.action, "user.update");
}

#[test]
fn long_values_are_cut_and_still_parse() {
    let long = Value::String("é".repeat(3 * MAX_VALUE_CHARS));
    let text = json_text(&long);
    assert!(text.len() <= MAX_VALUE_CHARS);
    let back: Value = serde_json::from_str(&text).unwrap();
    assert!(back.as_str().unwrap().ends_with('…'));
    let detail =
        event("order.send", "device", String::new(), String::new(), "x".repeat(10 * MAX_VALUE_CHARS)).detail;
    assert!(detail.len() <= MAX_VALUE_CHARS + '…'.len_utf8());
}

#[test]
fn the_actor_is_set_for_the_work_and_restored_after_even_on_panic() {
    assert_eq!(current_actor(), Actor::System { component: "central".into() });
    let inner = acting(actor(), || {
        let nested = acting(Actor::Gateway { id: [1; 16] }, current_actor);
        (nested, current_actor())
    });
    assert_eq!(inner, (Actor::Gateway { id: [1; 16] }, actor()));
    assert_eq!(current_actor().kind(), "system");
    let caught = std::panic::catch_unwind(|| acting(actor(), || panic!("work failed")));
    assert!(caught.is_err());
    assert_eq!(current_actor().kind(), "system", "a panic does not leave the actor set");
}

#[test]
fn retention_cutoff_is_days_before_now() {
    let r = AuditRetention { max_entries: 10, max_age_days: 2 };
    assert_eq!(r.cutoff(Timestamp(3 * 86_400_000)), Timestamp(86_400_000));
    assert_eq!(r.cutoff(Timestamp(0)).0, -2 * 86_400_000);
}
