//! EC2 floats: Elastic IPs, secondary private IPs, route-table entries.
//!
//! Observation uses one Describe call per resource type per region. An automatic move is
//! one mutating call (AssociateAddress / AssignPrivateIpAddresses / ReplaceRoute) followed
//! by its stamp (CreateTags): the float was claimed for the epoch when leadership was
//! gained, so the stamp that fences older leaders is already there. A switchover stamps
//! first, so its pin exists before the float moves. Moves use the reassociation /
//! reassignment flags, so they are idempotent and never need a detach first, except
//! under strict fencing (EIPs): DisassociateAddress of the observed association, then
//! AssociateAddress without reassociation, so EC2 refuses a move based on a stale view.

mod observe;
mod release;
mod stamps;

pub mod spec;

use crate::leader::Fence;
use crate::metrics::Metrics;
use crate::model::MoveStamp;
use crate::pace::{Buckets, Turn};
use crate::provider::aws::stamp;
use crate::provider::{
    Attached, FloatRef, MoveDone, MoveOrder, ProviderError, StampOrder, StampWhen,
};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, Tag};
use spec::{Ec2Endpoint, Ec2Float, RouteVia};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// EC2 client, pacing and accounting for one region.
pub struct Ec2Region {
    pub region: String,
    pub client: Client,
    /// One client-side bucket per EC2 API, as EC2 counts (moves never wait for stamps).
    pub buckets: Arc<Buckets>,
    /// Stamps waiting to go out batched (one CreateTags for every resource that gets the
    /// same tag).
    pub stamps: stamps::StampQueue,
    /// Adaptive slow-down under sustained throttling, waited before the token bucket.
    pub backoff: Arc<super::attempts::Backoff>,
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

/// A holder as EC2 reports it (None: not attached).
fn holder(instance: Option<&str>, eni: Option<&str>) -> Option<Attached> {
    Ec2Endpoint::attached(instance, eni).map(Attached::Ec2)
}

/// The EC2 description of a float handed to this provider.
fn ec2(float: &FloatRef) -> Result<&Ec2Float, ProviderError> {
    float
        .kind
        .ec2()
        .ok_or_else(|| ProviderError::WrongProvider(float.id.clone(), "EC2"))
}

/// The ENI of an EC2 holder, if any.
fn eni_of(h: Option<&Attached>) -> Option<&str> {
    h.and_then(Attached::ec2).and_then(|e| e.eni_id.as_deref())
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
        R: std::fmt::Debug + super::HttpStatus + 'static,
    {
        super::timed(&self.metrics, "ec2", op, &self.region, fut).await
    }

    /// Wait for a token of `op` in the queue's order, then ask the fence. Only then may a
    /// mutating call be sent. Returns how long the call waited for its token.
    async fn gate(
        &self,
        op: &'static str,
        fence: &dyn Fence,
        st: &MoveStamp,
        turn: &Turn,
    ) -> Result<Duration, ProviderError> {
        let slow = self.backoff.current();
        if !slow.is_zero() {
            tokio::time::sleep(slow).await;
        }
        let waited = self.buckets.acquire(op, turn).await;
        if let Err(source) = fence.permit(st.epoch, self.call_timeout) {
            self.metrics.fenced.inc();
            return Err(ProviderError::Fenced { op, source });
        }
        self.mutations.fetch_add(1, Ordering::Relaxed);
        Ok(waited)
    }

    /// Where a float's stamp lives: (resource, tag key). None: nowhere to write it (a
    /// secondary IP that no interface holds).
    fn stamp_site(kind: &Ec2Float, eni: Option<&str>) -> Option<(String, String)> {
        match kind {
            Ec2Float::Eip { allocation_id } => Some((allocation_id.clone(), stamp::key(None))),
            Ec2Float::SecondaryIp { address } => {
                eni.map(|e| (e.to_string(), stamp::key(Some(address))))
            }
            Ec2Float::Route {
                route_table_id,
                destination,
                ..
            } => Some((route_table_id.clone(), stamp::key(Some(destination)))),
        }
    }

    pub async fn stamp_float(
        &self,
        o: &StampOrder,
        fence: &dyn Fence,
    ) -> Result<(), ProviderError> {
        match Self::stamp_site(ec2(&o.float)?, eni_of(o.holder.as_ref())) {
            Some((resource, key)) => self.tag(&resource, key, &o.stamp, fence, &o.turn).await,
            None => Ok(()),
        }
    }

    pub async fn move_float(
        &self,
        o: &MoveOrder,
        fence: &dyn Fence,
    ) -> Result<MoveDone, ProviderError> {
        let st = &o.stamp;
        let to = o.to.ec2.clone().unwrap_or_default();
        let site = Self::stamp_site(ec2(&o.float)?, to.eni_id.as_deref());
        if o.stamp_when == StampWhen::Before
            && let Some((resource, key)) = &site
        {
            self.tag(resource, key.clone(), st, fence, &o.turn).await?;
        }
        let started = Instant::now();
        let mut waited = Duration::ZERO;
        let calls = self.move_only(o, fence, &mut waited).await?;
        let mut done = MoveDone {
            calls_to_move: calls,
            move_time: started.elapsed().saturating_sub(waited),
            stamp_error: None,
            token_wait: waited,
        };
        // The stamp waits in its own bucket, behind every move: a stamp never delays a move.
        let stamp_turn = Turn {
            priority: crate::pace::Priority {
                class: crate::pace::Class::Stamp,
                rank: o.turn.priority.rank,
            },
            heart: o.turn.heart.clone(),
        };
        if o.stamp_when == StampWhen::After
            && let Some((resource, key)) = site
            && let Err(e) = self.tag(&resource, key, st, fence, &stamp_turn).await
        {
            done.stamp_error = Some(e.to_string());
        }
        Ok(done)
    }

    /// The move itself; returns the number of mutating round trips it took.
    async fn move_only(
        &self,
        o: &MoveOrder,
        fence: &dyn Fence,
        waited: &mut Duration,
    ) -> Result<u32, ProviderError> {
        let st = &o.stamp;
        let to = o.to.ec2.clone().unwrap_or_default();
        match ec2(&o.float)? {
            Ec2Float::Eip { allocation_id } => {
                self.move_eip(o, allocation_id, &to, fence, waited).await
            }
            Ec2Float::SecondaryIp { address } => {
                self.move_secondary_ip(o, address, &to, fence, waited).await
            }
            Ec2Float::Route {
                route_table_id,
                destination,
                via,
            } => {
                let route = (route_table_id.as_str(), destination.as_str(), *via);
                self.move_route(st, route, &to, fence, &o.turn, waited)
                    .await
            }
        }
    }

    /// Associate the Elastic IP (with strict fencing: disassociate exactly the observed
    /// association first, and refuse to reassociate, so EC2 itself refuses a stale leader).
    async fn move_eip(
        &self,
        o: &MoveOrder,
        allocation_id: &str,
        to: &Ec2Endpoint,
        fence: &dyn Fence,
        waited: &mut Duration,
    ) -> Result<u32, ProviderError> {
        let st = &o.stamp;
        let mut calls = 0;
        let reassociate = match &o.strict {
            None => true,
            Some(observed) => {
                if let Some(assoc) = observed {
                    calls += 1;
                    if !self.disassociate(assoc, fence, st, &o.turn).await? {
                        return Err(ProviderError::Conflict {
                            op: "DisassociateAddress",
                            region: self.region.clone(),
                            code: "InvalidAssociationID.NotFound".into(),
                            message: format!("association {assoc} no longer exists"),
                        });
                    }
                }
                false
            }
        };
        *waited += self.gate("AssociateAddress", fence, st, &o.turn).await?;
        calls += 1;
        let mut req = self
            .client
            .associate_address()
            .allocation_id(allocation_id)
            .allow_reassociation(reassociate);
        req = match (&to.instance_id, &to.eni_id) {
            (Some(i), _) => req.instance_id(i),
            (None, Some(e)) => req.network_interface_id(e),
            (None, None) => {
                return Err(ProviderError::MissingBinding("instance_id or eni_id"));
            }
        };
        match self.timed("AssociateAddress", req.send()).await {
            Ok(_) => Ok(calls),
            Err(ProviderError::Api {
                code,
                message,
                region,
                ..
            }) if !reassociate && code == "Resource.AlreadyAssociated" => {
                Err(ProviderError::Conflict {
                    op: "AssociateAddress",
                    region,
                    code,
                    message,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn move_secondary_ip(
        &self,
        o: &MoveOrder,
        address: &str,
        to: &Ec2Endpoint,
        fence: &dyn Fence,
        waited: &mut Duration,
    ) -> Result<u32, ProviderError> {
        let st = &o.stamp;
        let eni = to
            .eni_id
            .as_deref()
            .ok_or(ProviderError::MissingBinding("eni_id"))?;
        *waited += self
            .gate("AssignPrivateIpAddresses", fence, st, &o.turn)
            .await?;
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
        if let Some(old) = eni_of(o.from.as_ref()).filter(|old| *old != eni) {
            self.unassign_leftover(old, address, fence, st, &o.turn)
                .await;
        }
        Ok(1)
    }

    /// Point the route at the target (create it when it is missing).
    async fn move_route(
        &self,
        st: &MoveStamp,
        (route_table_id, destination, via): (&str, &str, RouteVia),
        to: &Ec2Endpoint,
        fence: &dyn Fence,
        turn: &Turn,
        waited: &mut Duration,
    ) -> Result<u32, ProviderError> {
        let (inst, eni) = match via {
            RouteVia::Instance => (
                Some(
                    to.instance_id
                        .as_deref()
                        .ok_or(ProviderError::MissingBinding("instance_id"))?,
                ),
                None,
            ),
            RouteVia::Eni => (
                None,
                Some(
                    to.eni_id
                        .as_deref()
                        .ok_or(ProviderError::MissingBinding("eni_id"))?,
                ),
            ),
        };
        *waited += self.gate("ReplaceRoute", fence, st, turn).await?;
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
            Ok(_) => Ok(1),
            Err(ProviderError::Api { code, .. })
                if code.contains("NotFound") || code == "InvalidParameterValue" =>
            {
                *waited += self.gate("CreateRoute", fence, st, turn).await?;
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
                .map(|_| 2)
            }
            Err(e) => Err(e),
        }
    }

    async fn unassign_leftover(
        &self,
        eni: &str,
        address: &str,
        fence: &dyn Fence,
        st: &MoveStamp,
        turn: &Turn,
    ) {
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
            // Not known (the read failed, e.g. throttled): try the removal anyway; it is
            // harmless when the address is not there, and a copy left behind would stay.
            .unwrap_or(true);
        if !still_there {
            return;
        }
        // A copy left behind would stay unseen (reads report one holder), so a throttled
        // removal is tried again a few times before it is given up.
        for attempt in 1..=3u32 {
            match self.unassign(eni, address, fence, st, turn).await {
                Err(ProviderError::Throttled { .. } | ProviderError::Transport { .. })
                    if attempt < 3 =>
                {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => {
                    tracing::debug!(error = %e, eni, address, "leftover address not removed");
                    return;
                }
                Ok(()) => return,
            }
        }
    }
}
