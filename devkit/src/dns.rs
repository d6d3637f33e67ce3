//! Route 53 fixtures: a hosted zone per scenario, weighted record sets, and reading them
//! back from outside the controller (what a resolver would be told).

use crate::DevkitError;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use floatover::provider::aws::sdk_config;
use std::collections::BTreeMap;
use std::time::Duration;

fn err(op: &'static str) -> impl Fn(String) -> DevkitError {
    move |message| DevkitError::Seed { op, message }
}

/// A Route 53 client for checking and seeding.
pub async fn client(endpoint: &str) -> aws_sdk_route53::Client {
    let conf = sdk_config(
        "us-east-1",
        Some(endpoint),
        Duration::from_secs(10),
        3,
        Some(crate::test_credentials()),
    )
    .await;
    aws_sdk_route53::Client::new(&conf)
}

/// Create a hosted zone `name` (unique per scenario); returns its id without the
/// `/hostedzone/` prefix.
pub async fn zone(c: &aws_sdk_route53::Client, name: &str) -> Result<String, DevkitError> {
    let out = c
        .create_hosted_zone()
        .name(name)
        .caller_reference(format!("{name}-{}", rand::random::<u64>()))
        .send()
        .await
        .map_err(|e| err("CreateHostedZone")(format!("{e:?}")))?;
    let id = out
        .hosted_zone()
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
        .ok_or_else(|| err("CreateHostedZone")("no zone in the answer".into()))?;
    Ok(id)
}

/// Send one change batch.
async fn send(
    c: &aws_sdk_route53::Client,
    zone: &str,
    changes: Vec<Change>,
) -> Result<(), DevkitError> {
    let batch = ChangeBatch::builder()
        .set_changes(Some(changes))
        .build()
        .map_err(|e| err("ChangeBatch")(e.to_string()))?;
    c.change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(batch)
        .send()
        .await
        .map_err(|e| err("ChangeResourceRecordSets")(format!("{e:?}")))?;
    Ok(())
}

/// One change of `action` on `set`.
fn change(action: ChangeAction, set: ResourceRecordSet) -> Result<Change, DevkitError> {
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(|e| err("Change")(e.to_string()))
}

/// Create one weighted A record per `(set_identifier, address, weight)`.
pub async fn weighted(
    c: &aws_sdk_route53::Client,
    zone: &str,
    name: &str,
    members: &[(&str, &str, i64)],
) -> Result<(), DevkitError> {
    write_weighted(c, zone, name, members, ChangeAction::Create).await
}

/// A zone for `domain` with the weighted set `www.<domain>.` over `members`: the client,
/// the zone id and the record name (the fixture of every weighted-record test).
pub async fn weighted_zone(
    endpoint: &str,
    domain: &str,
    members: &[(&str, &str, i64)],
) -> Result<(aws_sdk_route53::Client, String, String), DevkitError> {
    let r53 = client(endpoint).await;
    let zone = zone(&r53, domain).await?;
    let name = format!("www.{domain}.");
    weighted(&r53, &zone, &name, members).await?;
    Ok((r53, zone, name))
}

/// Change weighted A records the way a person with the console would (UPSERT): drift.
pub async fn upsert_weighted(
    c: &aws_sdk_route53::Client,
    zone: &str,
    name: &str,
    members: &[(&str, &str, i64)],
) -> Result<(), DevkitError> {
    write_weighted(c, zone, name, members, ChangeAction::Upsert).await
}

async fn write_weighted(
    c: &aws_sdk_route53::Client,
    zone: &str,
    name: &str,
    members: &[(&str, &str, i64)],
    action: ChangeAction,
) -> Result<(), DevkitError> {
    let mut changes = Vec::new();
    for (id, addr, w) in members {
        let rr = ResourceRecord::builder()
            .value(*addr)
            .build()
            .map_err(|e| err("ResourceRecord")(e.to_string()))?;
        let set = ResourceRecordSet::builder()
            .name(name)
            .r#type(RrType::A)
            .set_identifier(*id)
            .weight(*w)
            .ttl(60)
            .resource_records(rr)
            .build()
            .map_err(|e| err("ResourceRecordSet")(e.to_string()))?;
        changes.push(change(action.clone(), set)?);
    }
    send(c, zone, changes).await
}

/// The weights of `name`'s weighted A records by set identifier, and the stamp record's
/// value (`_floatover.<name>` TXT), as Route 53 reports them.
pub async fn read(
    c: &aws_sdk_route53::Client,
    zone: &str,
    name: &str,
) -> Result<(BTreeMap<String, i64>, Option<String>), DevkitError> {
    let out = c
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .map_err(|e| err("ListResourceRecordSets")(format!("{e:?}")))?;
    let norm = |s: &str| s.trim_end_matches('.').to_ascii_lowercase();
    let mut weights = BTreeMap::new();
    let mut stamp = None;
    for s in out.resource_record_sets() {
        if norm(s.name()) == norm(name) && *s.r#type() == RrType::A {
            // moto (LocalStack) leaves out a weight of 0.
            if let Some(id) = s.set_identifier() {
                weights.insert(id.to_string(), s.weight().unwrap_or(0));
            }
        } else if norm(s.name()) == norm(&format!("_floatover.{name}"))
            && *s.r#type() == RrType::Txt
        {
            stamp = s
                .resource_records()
                .first()
                .map(|r| r.value().trim_matches('"').to_string());
        }
    }
    Ok((weights, stamp))
}

/// Create a Route 53 HTTP health check on `ip:port` (the id, to put on a record).
pub async fn health_check(
    c: &aws_sdk_route53::Client,
    ip: &str,
    port: i32,
) -> Result<String, DevkitError> {
    use aws_sdk_route53::types::{HealthCheckConfig, HealthCheckType};
    let conf = HealthCheckConfig::builder()
        .r#type(HealthCheckType::Http)
        .ip_address(ip)
        .port(port)
        .resource_path("/")
        .build()
        .map_err(|e| err("HealthCheckConfig")(e.to_string()))?;
    let out = c
        .create_health_check()
        .caller_reference(format!("hc-{}", rand::random::<u64>()))
        .health_check_config(conf)
        .send()
        .await
        .map_err(|e| err("CreateHealthCheck")(format!("{e:?}")))?;
    out.health_check()
        .map(|h| h.id().to_string())
        .ok_or_else(|| err("CreateHealthCheck")("no health check in the answer".into()))
}

/// Create a failover pair of A records: `(set_identifier, address, health check id)` for
/// the PRIMARY, then the SECONDARY.
pub async fn failover_pair(
    c: &aws_sdk_route53::Client,
    zone: &str,
    name: &str,
    pair: [(&str, &str, Option<&str>); 2],
) -> Result<(), DevkitError> {
    use aws_sdk_route53::types::ResourceRecordSetFailover;
    let mut changes = Vec::new();
    for ((id, addr, hc), role) in pair.iter().zip([
        ResourceRecordSetFailover::Primary,
        ResourceRecordSetFailover::Secondary,
    ]) {
        let rr = ResourceRecord::builder()
            .value(*addr)
            .build()
            .map_err(|e| err("ResourceRecord")(e.to_string()))?;
        let set = ResourceRecordSet::builder()
            .name(name)
            .r#type(RrType::A)
            .set_identifier(*id)
            .failover(role)
            .set_health_check_id(hc.map(str::to_string))
            .ttl(60)
            .resource_records(rr)
            .build()
            .map_err(|e| err("ResourceRecordSet")(e.to_string()))?;
        changes.push(change(ChangeAction::Create, set)?);
    }
    send(c, zone, changes).await
}

/// The failover role and health check id of each of `name`'s A records, by set identifier.
pub async fn roles(
    c: &aws_sdk_route53::Client,
    zone: &str,
    name: &str,
) -> Result<BTreeMap<String, (String, Option<String>)>, DevkitError> {
    let out = c
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .map_err(|e| err("ListResourceRecordSets")(format!("{e:?}")))?;
    let norm = |s: &str| s.trim_end_matches('.').to_ascii_lowercase();
    Ok(out
        .resource_record_sets()
        .iter()
        .filter(|s| norm(s.name()) == norm(name) && *s.r#type() == RrType::A)
        .filter_map(|s| {
            Some((
                s.set_identifier()?.to_string(),
                (
                    s.failover()
                        .map(|f| f.as_str().to_string())
                        .unwrap_or_default(),
                    s.health_check_id().map(str::to_string),
                ),
            ))
        })
        .collect())
}
