//! The two-site config the narrow site tests share: one DNS group `www` with targets
//! `east` and `west` (probes that are never asked), and the primary hot site `east`.
//! A test appends its own `west` site (`west_site`), tier and steps as it needs.

/// Everything but the DR site.
pub const EAST_PRIMARY: &str = r#"
leader: { backend: single }
aws: { region: us-east-1 }
groups:
  - name: www
    targets:
      - { name: east, dns: { value: 10.0.0.1, set_identifier: east }, probes: [ { tcp: { address: "127.0.0.1:9" } } ] }
      - { name: west, dns: { value: 10.1.0.1, set_identifier: west }, probes: [ { tcp: { address: "127.0.0.1:9" } } ] }
    floats: [ { dns: { zone_id: Z1, name: www.example.com, type: A, ttl: 60 } } ]
sites:
  - { name: east, tier: hot, primary: true, traffic: [ { group: www, target: east } ] }
"#;

/// The config with the DR site `west` (us-west-2, takes `www` on west): `body` holds its
/// other keys (tier, capacity, steps), each line indented by four spaces.
pub fn west_site(body: &str) -> String {
    format!(
        "{EAST_PRIMARY}  - name: west\n    region: us-west-2\n    traffic: [ {{ group: www, target: west }} ]\n{body}"
    )
}
