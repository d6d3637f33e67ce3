//! Reading EC2 state: one Describe call per resource type per region, turned into
//! domain observations (holder, stamp, version) at this boundary.

use super::spec::Ec2Float;
use super::{Ec2Region, ec2, filter, holder, tag_value};
use crate::provider::FloatRef;
use crate::provider::aws::stamp;
use crate::provider::{Observation, ProviderError};
use aws_sdk_ec2::types::{NetworkInterface, RouteTable};
use std::collections::HashMap;

/// Values one EC2 filter takes in this code (EC2 accepts up to 200 in many APIs): larger
/// sets are read in chunks of this size (or unfiltered, for addresses).
const FILTER_VALUES: usize = 200;
/// At most this many pages per read: a bound, not a limit anyone hits.
const MAX_PAGES: usize = 100;

impl Ec2Region {
    /// Wait for a read token of `op` (reads have their own buckets, as EC2 counts them).
    async fn read_turn(&self, op: &str) {
        let turn = crate::pace::Turn {
            priority: crate::pace::Priority {
                class: crate::pace::Class::Read,
                rank: 0,
            },
            heart: None,
        };
        self.buckets.acquire(op, &turn).await;
    }

    /// Every page of a Describe call for `ids`, in filter-sized chunks, each page through
    /// the API's read bucket. `fetch` sends one page (chunk, next token) and answers its
    /// items and the next token.
    async fn paged<T, F, Fut>(
        &self,
        op: &str,
        ids: &[String],
        fetch: F,
    ) -> Result<Vec<T>, ProviderError>
    where
        F: Fn(Vec<String>, Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), ProviderError>>,
    {
        let mut all = Vec::new();
        for chunk in ids.chunks(FILTER_VALUES) {
            let mut next: Option<String> = None;
            for _ in 0..MAX_PAGES {
                self.read_turn(op).await;
                let (items, token) = fetch(chunk.to_vec(), next.take()).await?;
                all.extend(items);
                match token.filter(|t| !t.is_empty()) {
                    Some(t) => next = Some(t),
                    None => break,
                }
            }
        }
        Ok(all)
    }

    /// Instance ids EC2 does not know (filters, so one unknown id does not fail the call).
    pub async fn missing_instances(&self, ids: &[String]) -> Result<Vec<String>, ProviderError> {
        let resp = self
            .timed(
                "DescribeInstances",
                self.client
                    .describe_instances()
                    .filters(filter("instance-id", ids))
                    .send(),
            )
            .await?;
        let found: std::collections::HashSet<&str> = resp
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| i.instance_id())
            .collect();
        Ok(ids
            .iter()
            .filter(|i| !found.contains(i.as_str()))
            .cloned()
            .collect())
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
            match ec2(f)? {
                Ec2Float::Eip { allocation_id } => allocs.push(allocation_id.clone()),
                Ec2Float::SecondaryIp { address } => {
                    ips.insert(address.as_str(), f.id.as_str());
                }
                Ec2Float::Route {
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
            self.read_turn("DescribeAddresses").await;
            // Beyond one filter's worth of ids, one unfiltered call reads the region's
            // addresses (DescribeAddresses does not paginate): still one call per read.
            let req = self.client.describe_addresses();
            let req = if allocs.len() <= FILTER_VALUES {
                req.filters(filter("allocation-id", &allocs))
            } else {
                req
            };
            self.timed("DescribeAddresses", req.send()).await.map(Some)
        };
        let nics = async {
            if ips.is_empty() || enis.is_empty() {
                return Ok(None);
            }
            let op = "DescribeNetworkInterfaces";
            self.paged(op, enis, |chunk, next| async move {
                let page = self
                    .timed(
                        op,
                        self.client
                            .describe_network_interfaces()
                            .filters(filter("network-interface-id", &chunk))
                            .max_results(1000)
                            .set_next_token(next)
                            .send(),
                    )
                    .await?;
                let token = page.next_token().map(str::to_string);
                Ok((page.network_interfaces().to_vec(), token))
            })
            .await
            .map(Some)
        };
        let routes = async {
            if tables.is_empty() {
                return Ok(None);
            }
            let ids: Vec<String> = tables.keys().map(|s| s.to_string()).collect();
            let op = "DescribeRouteTables";
            self.paged(op, &ids, |chunk, next| async move {
                let page = self
                    .timed(
                        op,
                        self.client
                            .describe_route_tables()
                            .filters(filter("route-table-id", &chunk))
                            .max_results(100)
                            .set_next_token(next)
                            .send(),
                    )
                    .await?;
                let token = page.next_token().map(str::to_string);
                Ok((page.route_tables().to_vec(), token))
            })
            .await
            .map(Some)
        };
        let (eips, nics, routes) = tokio::join!(eips, nics, routes);

        if let Some(resp) = eips? {
            let wanted = allocs.iter().map(String::as_str).collect();
            read_eips(&mut out, &wanted, &resp);
        }
        if !ips.is_empty() {
            // Every requested IP is known: on one of the target ENIs, or on none of them.
            for (_, id) in ips.iter() {
                out.insert(id.to_string(), Observation::default());
            }
            if let Some(nics) = nics? {
                read_secondary_ips(&mut out, &ips, &nics);
            }
        }
        if let Some(rts) = routes? {
            read_routes(&mut out, &tables, &rts);
        }
        Ok(out)
    }
}

/// The Elastic IPs' holders, stamps and association ids.
fn read_eips(
    out: &mut HashMap<String, Observation>,
    wanted: &std::collections::HashSet<&str>,
    resp: &aws_sdk_ec2::operation::describe_addresses::DescribeAddressesOutput,
) {
    for a in resp.addresses() {
        let Some(alloc) = a.allocation_id() else {
            continue;
        };
        if !wanted.contains(alloc) {
            continue;
        }
        out.insert(
            Ec2Float::Eip {
                allocation_id: alloc.to_string(),
            }
            .id(),
            Observation {
                holder: holder(a.instance_id(), a.network_interface_id()),
                stamp: tag_value(a.tags(), stamp::PREFIX).and_then(stamp::decode),
                version: a
                    .association_id()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                ..Observation::default()
            },
        );
    }
}

/// Which target ENI holds each secondary IP (absent: none of them).
fn read_secondary_ips(
    out: &mut HashMap<String, Observation>,
    ips: &HashMap<&str, &str>,
    nics: &[NetworkInterface],
) {
    for n in nics {
        for p in n.private_ip_addresses() {
            let (Some(addr), false) = (p.private_ip_address(), p.primary().unwrap_or(false)) else {
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
                        version: None,
                        ..Observation::default()
                    },
                );
            }
        }
    }
}

/// Where each watched route points, with its table's stamp.
fn read_routes(
    out: &mut HashMap<String, Observation>,
    tables: &HashMap<&str, Vec<(&str, &str)>>,
    rts: &[RouteTable],
) {
    for t in rts {
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
                    holder: route.and_then(|r| holder(r.instance_id(), r.network_interface_id())),
                    stamp: tag_value(t.tags(), &stamp::key(Some(dest))).and_then(stamp::decode),
                    version: None,
                    ..Observation::default()
                },
            );
        }
    }
}
