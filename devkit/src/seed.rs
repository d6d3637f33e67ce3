//! Create the AWS resources a scenario needs (on LocalStack or a sandbox account):
//! a VPC and subnet, instances (each with its primary ENI), an Elastic IP, a route table
//! and a lease bucket.

use crate::DevkitError;
use floatover::provider::aws::sdk_config;
use std::time::Duration;

fn seed_err<E: std::fmt::Debug>(op: &'static str) -> impl Fn(E) -> DevkitError {
    move |e| DevkitError::Seed {
        op,
        message: format!("{e:?}"),
    }
}

/// One instance of a scenario.
#[derive(Debug, Clone)]
pub struct Instance {
    pub instance_id: String,
    pub eni_id: String,
}

/// Everything a scenario created.
#[derive(Debug, Clone)]
pub struct World {
    pub region: String,
    pub endpoint: String,
    pub instances: Vec<Instance>,
    pub allocation_id: String,
    pub public_ip: String,
    pub route_table_id: String,
    pub secondary_ip: String,
    pub route_destination: String,
    pub bucket: String,
}

/// Clients for checking the world from outside the controller.
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub s3: aws_sdk_s3::Client,
}

pub async fn clients(endpoint: &str, region: &str) -> Clients {
    let conf = sdk_config(
        region,
        Some(endpoint),
        Duration::from_secs(10),
        3,
        Some(crate::test_credentials()),
    )
    .await;
    let s3conf = aws_sdk_s3::config::Builder::from(&conf)
        .force_path_style(true)
        .build();
    Clients {
        ec2: aws_sdk_ec2::Client::new(&conf),
        s3: aws_sdk_s3::Client::from_conf(s3conf),
    }
}

/// Seed `n` instances and one float of each kind. `tag` keeps names unique per scenario.
pub async fn world(
    endpoint: &str,
    region: &str,
    n: usize,
    tag: &str,
) -> Result<World, DevkitError> {
    let c = clients(endpoint, region).await;
    let vpc = c
        .ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .map_err(seed_err("CreateVpc"))?;
    let vpc_id = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap_or_default()
        .to_string();
    let subnet = c
        .ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        // A /24 holds about 250 instances; the mass-failover world needs up to 1,000.
        .cidr_block(if n <= 200 {
            "10.0.1.0/24"
        } else {
            "10.0.16.0/20"
        })
        .send()
        .await
        .map_err(seed_err("CreateSubnet"))?;
    let subnet_id = subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .unwrap_or_default()
        .to_string();
    // In calls of at most 100: an emulator takes seconds per hundred instances.
    let mut instances: Vec<Instance> = Vec::with_capacity(n);
    while instances.len() < n {
        let count = (n - instances.len()).min(100) as i32;
        let run = c
            .ec2
            .run_instances()
            .image_id("ami-12345678")
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .min_count(count)
            .max_count(count)
            .subnet_id(&subnet_id)
            .send()
            .await
            .map_err(seed_err("RunInstances"))?;
        instances.extend(run.instances().iter().map(|i| {
            Instance {
                instance_id: i.instance_id().unwrap_or_default().to_string(),
                eni_id: i
                    .network_interfaces()
                    .first()
                    .and_then(|n| n.network_interface_id())
                    .unwrap_or_default()
                    .to_string(),
            }
        }));
        if run.instances().is_empty() {
            break;
        }
    }
    if instances.len() != n || instances.iter().any(|i| i.eni_id.is_empty()) {
        return Err(DevkitError::Other(format!(
            "RunInstances returned {instances:?}"
        )));
    }
    let eip = allocate_eip(&c.ec2).await?;
    let rt = c
        .ec2
        .create_route_table()
        .vpc_id(&vpc_id)
        .send()
        .await
        .map_err(seed_err("CreateRouteTable"))?;
    let bucket = format!("floatover-{tag}");
    create_bucket(&c.s3, region, &bucket).await?;
    Ok(World {
        region: region.to_string(),
        endpoint: endpoint.to_string(),
        instances,
        allocation_id: eip.allocation_id().unwrap_or_default().to_string(),
        public_ip: eip.public_ip().unwrap_or_default().to_string(),
        route_table_id: rt
            .route_table()
            .and_then(|r| r.route_table_id())
            .unwrap_or_default()
            .to_string(),
        secondary_ip: "10.0.1.200".into(),
        route_destination: "10.9.0.1/32".into(),
        bucket,
    })
}

/// Allocate one VPC Elastic IP.
pub async fn allocate_eip(
    ec2: &aws_sdk_ec2::Client,
) -> Result<aws_sdk_ec2::operation::allocate_address::AllocateAddressOutput, DevkitError> {
    ec2.allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .send()
        .await
        .map_err(seed_err("AllocateAddress"))
}

impl Clients {
    /// Instance currently holding the Elastic IP.
    pub async fn eip_holder(&self, allocation_id: &str) -> Option<String> {
        let r = self
            .ec2
            .describe_addresses()
            .allocation_ids(allocation_id)
            .send()
            .await
            .ok()?;
        r.addresses()
            .first()
            .and_then(|a| a.instance_id())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// ENIs carrying the secondary address.
    pub async fn ip_holders(&self, enis: &[String], address: &str) -> Vec<String> {
        let Ok(r) = self
            .ec2
            .describe_network_interfaces()
            .set_network_interface_ids(Some(enis.to_vec()))
            .send()
            .await
        else {
            return vec![];
        };
        r.network_interfaces()
            .iter()
            .filter(|n| {
                n.private_ip_addresses()
                    .iter()
                    .any(|p| p.private_ip_address() == Some(address))
            })
            .filter_map(|n| n.network_interface_id().map(str::to_string))
            .collect()
    }

    /// Instance the route points at.
    pub async fn route_target(&self, table: &str, dest: &str) -> Option<String> {
        let r = self
            .ec2
            .describe_route_tables()
            .route_table_ids(table)
            .send()
            .await
            .ok()?;
        r.route_tables()
            .first()?
            .routes()
            .iter()
            .find(|x| x.destination_cidr_block() == Some(dest))?
            .instance_id()
            .map(str::to_string)
    }
}

/// An instance's state name (`stopped`, `running`, ...); empty when it cannot be read.
pub async fn instance_state(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    ec2.describe_instances()
        .instance_ids(id)
        .send()
        .await
        .ok()
        .and_then(|o| {
            o.reservations()
                .first()
                .and_then(|r| r.instances().first())
                .and_then(|i| i.state())
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string())
        })
        .unwrap_or_default()
}

/// Create an S3 bucket in `region` (outside us-east-1, S3 wants the region named in the
/// request body).
pub async fn create_bucket(
    s3: &aws_sdk_s3::Client,
    region: &str,
    bucket: &str,
) -> Result<(), DevkitError> {
    let mut cb = s3.create_bucket().bucket(bucket);
    if region != "us-east-1" {
        cb = cb.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                .build(),
        );
    }
    cb.send().await.map_err(seed_err("CreateBucket"))?;
    Ok(())
}
