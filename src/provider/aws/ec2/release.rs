//! Detaching floats (policy `on_all_unhealthy: release`): stamp first, then detach.
//! "Already detached" answers are success, so a release is idempotent.

use super::spec::Ec2Float;
use super::{Ec2Region, ec2, eni_of};
use crate::leader::Fence;
use crate::provider::aws::stamp;
use crate::provider::{ProviderError, ReleaseOrder};
use std::collections::HashSet;

impl Ec2Region {
    /// DisassociateAddress of one association, fenced. `Ok(false)` when EC2 no longer
    /// knows it (`InvalidAssociationID.NotFound`): someone else changed the EIP since.
    pub(super) async fn disassociate(
        &self,
        assoc: &str,
        fence: &dyn Fence,
        st: &crate::model::MoveStamp,
        turn: &crate::pace::Turn,
    ) -> Result<bool, ProviderError> {
        self.gate("DisassociateAddress", fence, st, turn).await?;
        match self
            .timed(
                "DisassociateAddress",
                self.client
                    .disassociate_address()
                    .association_id(assoc)
                    .send(),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(ProviderError::Api { code, .. }) if code == "InvalidAssociationID.NotFound" => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// UnassignPrivateIpAddresses of `address` from `eni`, fenced.
    pub(super) async fn unassign(
        &self,
        eni: &str,
        address: &str,
        fence: &dyn Fence,
        st: &crate::model::MoveStamp,
        turn: &crate::pace::Turn,
    ) -> Result<(), ProviderError> {
        self.gate("UnassignPrivateIpAddresses", fence, st, turn)
            .await?;
        self.timed(
            "UnassignPrivateIpAddresses",
            self.client
                .unassign_private_ip_addresses()
                .network_interface_id(eni)
                .private_ip_addresses(address)
                .send(),
        )
        .await
        .map(|_| ())
    }

    pub async fn release_float(
        &self,
        o: &ReleaseOrder,
        fence: &dyn Fence,
    ) -> Result<(), ProviderError> {
        let st = &o.stamp;
        match ec2(&o.float)? {
            Ec2Float::Eip { allocation_id } => {
                self.tag(allocation_id, stamp::key(None), st, fence, &o.turn)
                    .await?;
                let d = self
                    .timed(
                        "DescribeAddresses",
                        self.client
                            .describe_addresses()
                            .allocation_ids(allocation_id)
                            .send(),
                    )
                    .await?;
                let assocs: HashSet<String> = d
                    .addresses()
                    .iter()
                    .filter_map(|a| a.association_id().map(str::to_string))
                    .collect();
                for assoc in assocs {
                    // Already gone: the release is done either way.
                    self.disassociate(&assoc, fence, st, &o.turn).await?;
                }
                Ok(())
            }
            Ec2Float::SecondaryIp { address } => {
                let Some(eni) = eni_of(o.from.as_ref()).map(str::to_string) else {
                    return Ok(());
                };
                self.tag(&eni, stamp::key(Some(address)), st, fence, &o.turn)
                    .await?;
                self.unassign(&eni, address, fence, st, &o.turn).await
            }
            Ec2Float::Route {
                route_table_id,
                destination,
                ..
            } => {
                self.tag(
                    route_table_id,
                    stamp::key(Some(destination)),
                    st,
                    fence,
                    &o.turn,
                )
                .await?;
                self.gate("DeleteRoute", fence, st, &o.turn).await?;
                match self
                    .timed(
                        "DeleteRoute",
                        self.client
                            .delete_route()
                            .route_table_id(route_table_id)
                            .destination_cidr_block(destination)
                            .send(),
                    )
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(ProviderError::Api { code, .. }) if code.contains("NotFound") => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }
}
