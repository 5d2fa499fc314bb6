//! The bytes of users and API tokens, pinned (schema 8: with the sites their role is limited to),
//! and their schema-7 shapes, which a store of that version is migrated from. The why and what to
//! do when one fails: the note at the top of `disk_format_tests.rs`, whose helpers these use.

use neosens_protocol::ids::SiteId;
use uuid::Uuid;

use super::disk_format_tests::{assert_pinned, assert_record_pinned, at, key};
use crate::model::{ApiToken, ApiTokenV7, Record, Role, TokenId, User, UserId, UserV7};

pub(super) const USER: &str = concat!(
    "10050505050505050505050505050505010561646d696e41246172676f6e32696424763d3139246d3d31393435362c74",
    "3d322c703d31246332467364484e68624851246147467a614768686332686f59584e6f6147467a614102a4ff848ea85e",
    "00",
);
pub(super) const TOKEN: &str = concat!(
    "10707070707070707070707070707070010767726166616e61007e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e",
    "7e7e7e7e7e7e7e7e7e7ec49e858ea85e011051515151515151515151515151515101",
);

const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

#[test]
fn users_and_tokens_are_pinned() {
    let user = User {
        id: UserId(Uuid::from_bytes(key(0x05))),
        username: "admin".into(),
        password_hash: PASSWORD_HASH.into(),
        role: Role::Admin,
        created_at: at(0),
        sites: Vec::new(),
    };
    assert_record_pinned("USER", Record::User(user), USER);
    let token = ApiToken {
        id: TokenId(Uuid::from_bytes(key(0x70))),
        name: "grafana".into(),
        role: Role::Viewer,
        hash: [0x7e; 32],
        created_at: at(2_000),
        sites: vec![SiteId::from_bytes(key(0x51))],
    };
    assert_record_pinned("TOKEN", Record::Token(token), TOKEN);
}

const USER_V7: &str = concat!(
    "10050505050505050505050505050505010561646d696e41246172676f6e32696424763d3139246d3d31393435362c74",
    "3d322c703d31246332467364484e68624851246147467a614768686332686f59584e6f6147467a614102a4ff848ea85e",
);
const TOKEN_V7: &str = concat!(
    "10707070707070707070707070707070010767726166616e61007e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e",
    "7e7e7e7e7e7e7e7e7e7ec49e858ea85e",
);

#[test]
fn schema_7_users_and_tokens_are_pinned_and_become_campus_wide() {
    let user = UserV7 {
        id: UserId(Uuid::from_bytes(key(0x05))),
        username: "admin".into(),
        password_hash: PASSWORD_HASH.into(),
        role: Role::Admin,
        created_at: at(0),
    };
    assert_pinned("USER_V7", &user, USER_V7);
    assert!(User::from(user).scope().is_campus());
    let token = ApiTokenV7 {
        id: TokenId(Uuid::from_bytes(key(0x70))),
        name: "grafana".into(),
        role: Role::Viewer,
        hash: [0x7e; 32],
        created_at: at(2_000),
    };
    assert_pinned("TOKEN_V7", &token, TOKEN_V7);
    assert!(ApiToken::from(token).sites.is_empty());
}
