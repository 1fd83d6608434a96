//! Interop with the published v1 data-platform library (`dpcharmlibs-interfaces`):
//! a requirer gets its credentials through the library's own `resource_created`
//! event, from a provider on the same library, over the local model.

mod common;

use common::Lab;

#[test]
fn a_v1_requirer_gets_credentials_from_a_v1_provider() {
    let mut lab = Lab::new("v1");
    lab.deploy("db-requirer-v1", "client", 1);
    lab.deploy("db-provider-v1", "provider", 1);
    lab.settle();
    let rel = lab.integrate(("client", "database"), ("provider", "database"));
    let hooks = lab.settle();
    let creds = std::fs::read_to_string(lab.dirs["client/0"].join("credentials.json"))
        .unwrap_or_else(|_| panic!("resource_created never fired: {hooks:#?}"));
    let creds: serde_json::Value = serde_json::from_str(&creds).unwrap();
    assert_eq!(creds["username"], format!("relation_id_{rel}"));
    assert_eq!(creds["password"], "provider-v1-password");
    assert_eq!(creds["endpoints"], "10.9.0.2:5432");
    assert_eq!(creds["resource"], "app_db_v1");
    let provider_bag = &lab.model.relation(rel).unwrap().app_bags["provider"].data;
    assert!(
        !provider_bag
            .values()
            .any(|v| v.contains("provider-v1-password")),
        "the password travels in a secret: {provider_bag:?}"
    );
}
