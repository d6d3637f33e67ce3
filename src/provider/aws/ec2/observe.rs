//! Reading EC2 state: one Describe call per resource type per region, turned into
//! domain observations (holder, stamp, version) at this boundary.

use super::spec::Ec2Float;
use super::{Ec2Region, ec2, filter, holder, tag_value};
use crate::provider::FloatRef;
use crate::provider::aws::stamp;
use crate::provider::{Observation, ProviderError};
use std::collections::HashMap;

impl Ec2Region {
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
            read_eips(&mut out, &resp);
        }
        if !ips.is_empty() {
            // Every requested IP is known: on one of the target ENIs, or on none of them.
            for (_, id) in ips.iter() {
                out.insert(id.to_string(), Observation::default());
            }
            if let Some(resp) = nics? {
                read_secondary_ips(&mut out, &ips, &resp);
            }
        }
        if let Some(resp) = routes? {
            read_routes(&mut out, &tables, &resp);
        }
        Ok(out)
    }
}

/// The Elastic IPs' holders, stamps and association ids.
fn read_eips(
    out: &mut HashMap<String, Observation>,
    resp: &aws_sdk_ec2::operation::describe_addresses::DescribeAddressesOutput,
) {
    for a in resp.addresses() {
        let Some(alloc) = a.allocation_id() else {
            continue;
        };
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
    resp: &aws_sdk_ec2::operation::describe_network_interfaces::DescribeNetworkInterfacesOutput,
) {
    for n in resp.network_interfaces() {
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
    resp: &aws_sdk_ec2::operation::describe_route_tables::DescribeRouteTablesOutput,
) {
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
                    holder: route.and_then(|r| holder(r.instance_id(), r.network_interface_id())),
                    stamp: tag_value(t.tags(), &stamp::key(Some(dest))).and_then(stamp::decode),
                    version: None,
                    ..Observation::default()
                },
            );
        }
    }
}
