//! Interop with the published v0 data-platform library: a requirer charm gets its
//! credentials through the library's own `database_created` event, from a provider
//! charm on the same library, over the local model's relations and secrets.

mod common;

use common::Lab;

#[test]
fn a_v0_requirer_gets_credentials_from_a_v0_provider_through_secrets() {
    let mut lab = Lab::new("v0");
    lab.deploy("db-requirer-v0", "client", 1);
    lab.deploy("db-provider-v0", "provider", 1);
    lab.settle();
    let rel = lab.integrate(("client", "database"), ("provider", "database"));
    let hooks = lab.settle();
    let creds = std::fs::read_to_string(lab.dirs["client/0"].join("credentials.json"))
        .unwrap_or_else(|_| panic!("database_created never fired: {hooks:#?}"));
    let creds: serde_json::Value = serde_json::from_str(&creds).unwrap();
    assert_eq!(creds["username"], format!("relation_id_{rel}"));
    assert_eq!(creds["password"], "provider-password");
    assert_eq!(creds["endpoints"], "10.9.0.1:5432");
    assert_eq!(creds["database"], "app_db");
    let provider_bag = &lab.model.relation(rel).unwrap().app_bags["provider"].data;
    assert!(provider_bag.contains_key("secret-user"), "{provider_bag:?}");
    assert!(
        !provider_bag.contains_key("password"),
        "the password travels in a secret"
    );
    assert_eq!(
        lab.model.unit("provider/0").unwrap().status,
        charm::Status::Active("served app_db (CREATEDB)".into())
    );
}
