//! EC2 floats: Elastic IPs, secondary private IPs, route-table entries.
//!
//! Observation uses one Describe call per resource type per region. Each move is two
//! mutating calls, in this order: stamp the resource with the epoch (CreateTags), then
//! move (AssociateAddress / AssignPrivateIpAddresses / ReplaceRoute). Stamping first means
//! a crash between the two leaves a stamp that fences older leaders and a float that the
//! next leader simply moves again (idempotent). All moves use the reassociation /
//! reassignment flags, so they are idempotent and never need a detach first.

mod release;

use super::{Pacer, classify};
use crate::leader::Fence;
use crate::metrics::Metrics;
use crate::model::{FloatKind, FloatRef, MoveStamp, ProviderHolder, RouteVia};
use crate::provider::aws::stamp;
use crate::provider::{MoveOrder, Observation, ProviderError};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, Tag};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// EC2 client, pacing and accounting for one region.
pub struct Ec2Region {
    pub region: String,
    pub client: Client,
    pub pacer: Pacer,
    pub call_timeout: Duration,
    pub metrics: Arc<Metrics>,
    pub mutations: Arc<AtomicU64>,
}

fn filter(name: &str, values: &[String]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.to_vec()))
        .build()
}

fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// Emulators report "not attached" as empty strings rather than absent fields.
fn holder(instance: Option<&str>, eni: Option<&str>) -> Option<ProviderHolder> {
    let (instance, eni) = (
        instance.filter(|s| !s.is_empty()),
        eni.filter(|s| !s.is_empty()),
    );
    if instance.is_none() && eni.is_none() {
        return None;
    }
    Some(ProviderHolder {
        instance_id: instance.map(str::to_string),
        eni_id: eni.map(str::to_string),
    })
}

impl Ec2Region {
    /// Record an operation's outcome in metrics and turn SDK errors into ours.
    async fn timed<T, E, R>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T, aws_sdk_ec2::error::SdkError<E, R>>>,
    ) -> Result<T, ProviderError>
    where
        E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let started = Instant::now();
        let res = fut
            .instrument(tracing::info_span!("ec2", op, region = %self.region))
            .await;
        let took = started.elapsed();
        match res {
            Ok(v) => {
                self.metrics.provider_call(op, took, true, 0);
                Ok(v)
            }
            Err(e) => {
                let err = classify(op, &self.region, e);
                let throttled = u32::from(matches!(err, ProviderError::Throttled { .. }));
                self.metrics.provider_call(op, took, false, throttled);
                Err(err)
            }
        }
    }

    /// Wait for a token, then ask the fence. Only then may a mutating call be sent.
    async fn gate(
        &self,
        op: &'static str,
        fence: &dyn Fence,
        st: &MoveStamp,
    ) -> Result<(), ProviderError> {
        self.pacer.until_ready().await;
        if let Err(source) = fence.permit(st.epoch, self.call_timeout) {
            self.metrics.fenced.inc();
            return Err(ProviderError::Fenced { op, source });
        }
        self.mutations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn tag(
        &self,
        resource: &str,
        key: String,
        st: &MoveStamp,
        fence: &dyn Fence,
    ) -> Result<(), ProviderError> {
        self.gate("CreateTags", fence, st).await?;
        let t = Tag::builder().key(key).value(stamp::encode(st)).build();
        self.timed(
            "CreateTags",
            self.client.create_tags().resources(resource).tags(t).send(),
        )
        .await
        .map(|_| ())
    }

    /// Observe the given floats (all in this region).
    pub async fn observe(
        &self,
        floats: &[&FloatRef],
        enis: &[String],
    ) -> Result<HashMap<String, Observation>, ProviderError> {
        let mut out = HashMap::new();
        let mut allocs = Vec::new();
        let mut ips = HashMap::new();
        let mut tables: HashMap<&str, Vec<(&str, &str)>> = HashMap::new();
        for f in floats {
            match &f.kind {
                FloatKind::Eip { allocation_id } => allocs.push(allocation_id.clone()),
                FloatKind::SecondaryIp { address } => {
                    ips.insert(address.as_str(), f.id.as_str());
                }
                FloatKind::Route {
                    route_table_id,
                    destination,
                    ..
                } => {
                    tables
                        .entry(route_table_id.as_str())
                        .or_default()
                        .push((destination.as_str(), f.id.as_str()));
                }
            }
        }
        let eips = async {
            if allocs.is_empty() {
                return Ok(None);
            }
            self.timed(
                "DescribeAddresses",
                self.client
                    .describe_addresses()
                    .filters(filter("allocation-id", &allocs))
                    .send(),
            )
            .await
            .map(Some)
        };
        let nics = async {
            if ips.is_empty() || enis.is_empty() {
                return Ok(None);
            }
            self.timed(
                "DescribeNetworkInterfaces",
                self.client
                    .describe_network_interfaces()
                    .filters(filter("network-interface-id", enis))
                    .send(),
            )
            .await
            .map(Some)
        };
        let routes = async {
            if tables.is_empty() {
                return Ok(None);
            }
            let ids: Vec<String> = tables.keys().map(|s| s.to_string()).collect();
            self.timed(
                "DescribeRouteTables",
                self.client
                    .describe_route_tables()
                    .filters(filter("route-table-id", &ids))
                    .send(),
            )
            .await
            .map(Some)
        };
        let (eips, nics, routes) = tokio::join!(eips, nics, routes);

        if let Some(resp) = eips? {
            for a in resp.addresses() {
                let Some(alloc) = a.allocation_id() else {
                    continue;
                };
                out.insert(
                    FloatKind::Eip {
                        allocation_id: alloc.to_string(),
                    }
                    .id(),
                    Observation {
                        holder: holder(a.instance_id(), a.network_interface_id()),
                        stamp: tag_value(a.tags(), stamp::PREFIX).and_then(stamp::decode),
                    },
                );
            }
        }
        if !ips.is_empty() {
            // Every requested IP is known: on one of the target ENIs, or on none of them.
            for (_, id) in ips.iter() {
                out.insert(id.to_string(), Observation::default());
            }
            if let Some(resp) = nics? {
                for n in resp.network_interfaces() {
                    for p in n.private_ip_addresses() {
                        let (Some(addr), false) =
                            (p.private_ip_address(), p.primary().unwrap_or(false))
                        else {
                            continue;
                        };
                        if let Some(id) = ips.get(addr) {
                            out.insert(
                                id.to_string(),
                                Observation {
                                    holder: holder(
                                        n.attachment().and_then(|a| a.instance_id()),
                                        n.network_interface_id(),
                                    ),
                                    stamp: tag_value(n.tag_set(), &stamp::key(Some(addr)))
                                        .and_then(stamp::decode),
                                },
                            );
                        }
                    }
                }
            }
        }
        if let Some(resp) = routes? {
            for t in resp.route_tables() {
                let Some(tid) = t.route_table_id() else {
                    continue;
                };
                let Some(wanted) = tables.get(tid) else {
                    continue;
                };
                for (dest, id) in wanted {
                    let route = t
                        .routes()
                        .iter()
                        .find(|r| r.destination_cidr_block() == Some(dest));
                    out.insert(
                        id.to_string(),
                        Observation {
                            holder: route
                                .and_then(|r| holder(r.instance_id(), r.network_interface_id())),
                            stamp: tag_value(t.tags(), &stamp::key(Some(dest)))
                                .and_then(stamp::decode),
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    pub async fn move_float(&self, o: &MoveOrder, fence: &dyn Fence) -> Result<(), ProviderError> {
        let st = &o.stamp;
        match &o.float.kind {
            FloatKind::Eip { allocation_id } => {
                self.tag(allocation_id, stamp::key(None), st, fence).await?;
                self.gate("AssociateAddress", fence, st).await?;
                let mut req = self
                    .client
                    .associate_address()
                    .allocation_id(allocation_id)
                    .allow_reassociation(true);
                req = match (&o.to.instance_id, &o.to.eni_id) {
                    (Some(i), _) => req.instance_id(i),
                    (None, Some(e)) => req.network_interface_id(e),
                    (None, None) => {
                        return Err(ProviderError::MissingBinding("instance_id or eni_id"));
                    }
                };
                self.timed("AssociateAddress", req.send()).await.map(|_| ())
            }
            FloatKind::SecondaryIp { address } => {
                let eni =
                    o.to.eni_id
                        .as_deref()
                        .ok_or(ProviderError::MissingBinding("eni_id"))?;
                self.tag(eni, stamp::key(Some(address)), st, fence).await?;
                self.gate("AssignPrivateIpAddresses", fence, st).await?;
                self.timed(
                    "AssignPrivateIpAddresses",
                    self.client
                        .assign_private_ip_addresses()
                        .network_interface_id(eni)
                        .private_ip_addresses(address)
                        .allow_reassignment(true)
                        .send(),
                )
                .await?;
                // Real EC2 moves the address with AllowReassignment. Emulators may leave a
                // copy on the old ENI: remove it, best effort, so the address has one home.
                if let Some(old) = o
                    .from
                    .as_ref()
                    .and_then(|h| h.eni_id.as_deref())
                    .filter(|old| *old != eni)
                {
                    self.unassign_leftover(old, address, fence, st).await;
                }
                Ok(())
            }
            FloatKind::Route {
                route_table_id,
                destination,
                via,
            } => {
                self.tag(route_table_id, stamp::key(Some(destination)), st, fence)
                    .await?;
                let (inst, eni) = match via {
                    RouteVia::Instance => (
                        Some(
                            o.to.instance_id
                                .as_deref()
                                .ok_or(ProviderError::MissingBinding("instance_id"))?,
                        ),
                        None,
                    ),
                    RouteVia::Eni => (
                        None,
                        Some(
                            o.to.eni_id
                                .as_deref()
                                .ok_or(ProviderError::MissingBinding("eni_id"))?,
                        ),
                    ),
                };
                self.gate("ReplaceRoute", fence, st).await?;
                let replaced = self
                    .timed(
                        "ReplaceRoute",
                        self.client
                            .replace_route()
                            .route_table_id(route_table_id)
                            .destination_cidr_block(destination)
                            .set_instance_id(inst.map(str::to_string))
                            .set_network_interface_id(eni.map(str::to_string))
                            .send(),
                    )
                    .await;
                match replaced {
                    Ok(_) => Ok(()),
                    Err(ProviderError::Api { code, .. })
                        if code.contains("NotFound") || code == "InvalidParameterValue" =>
                    {
                        self.gate("CreateRoute", fence, st).await?;
                        self.timed(
                            "CreateRoute",
                            self.client
                                .create_route()
                                .route_table_id(route_table_id)
                                .destination_cidr_block(destination)
                                .set_instance_id(inst.map(str::to_string))
                                .set_network_interface_id(eni.map(str::to_string))
                                .send(),
                        )
                        .await
                        .map(|_| ())
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    async fn unassign_leftover(&self, eni: &str, address: &str, fence: &dyn Fence, st: &MoveStamp) {
        let still_there = self
            .timed(
                "DescribeNetworkInterfaces",
                self.client
                    .describe_network_interfaces()
                    .network_interface_ids(eni)
                    .send(),
            )
            .await
            .map(|r| {
                r.network_interfaces().iter().any(|n| {
                    n.private_ip_addresses()
                        .iter()
                        .any(|p| p.private_ip_address() == Some(address))
                })
            })
            .unwrap_or(false);
        if !still_there
            || self
                .gate("UnassignPrivateIpAddresses", fence, st)
                .await
                .is_err()
        {
            return;
        }
        let r = self
            .timed(
                "UnassignPrivateIpAddresses",
                self.client
                    .unassign_private_ip_addresses()
                    .network_interface_id(eni)
                    .private_ip_addresses(address)
                    .send(),
            )
            .await;
        if let Err(e) = r {
            tracing::debug!(error = %e, eni, address, "leftover address not removed");
        }
    }
}
