//! A DR site's data and services on moto: an RDS primary in us-east-1 with a read replica
//! in us-west-2, the replica's `ReplicaLag` in CloudWatch, and in us-west-2 an ECS
//! service, an EKS managed node group and an Auto Scaling group, all scaled to zero (what
//! a warm promotion promotes and scales). Every name is unique per call, so tests can
//! share one moto.

use crate::DevkitError;
use std::time::Duration;

/// What was created.
pub struct DataWorld {
    pub primary: String,
    pub replica: String,
    pub ecs_cluster: String,
    pub ecs_service: String,
    pub eks_cluster: String,
    pub nodegroup: String,
    pub asg: String,
    pub west_rds: aws_sdk_rds::Client,
    pub west_eks: aws_sdk_eks::Client,
    pub west_asg: aws_sdk_autoscaling::Client,
    pub west_ecs: aws_sdk_ecs::Client,
    pub west_cloudwatch: aws_sdk_cloudwatch::Client,
}

async fn conf(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    floatover::provider::aws::sdk_config(
        region,
        Some(endpoint),
        Duration::from_secs(10),
        3,
        Some(crate::test_credentials()),
    )
    .await
}

fn seed_err(op: &'static str) -> impl Fn(String) -> DevkitError {
    move |message| DevkitError::Seed { op, message }
}

/// Create the world on moto at `endpoint`, names suffixed with `tag`.
pub async fn seed(endpoint: &str, tag: &str) -> Result<DataWorld, DevkitError> {
    let east = conf(endpoint, "us-east-1").await;
    let west = conf(endpoint, "us-west-2").await;
    let east_rds = aws_sdk_rds::Client::new(&east);
    let west_rds = aws_sdk_rds::Client::new(&west);
    let west_ecs = aws_sdk_ecs::Client::new(&west);
    let west_cloudwatch = aws_sdk_cloudwatch::Client::new(&west);
    let primary = format!("db-east-{tag}");
    let replica = format!("db-west-{tag}");
    let made = east_rds
        .create_db_instance()
        .db_instance_identifier(&primary)
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .master_username("floatover")
        .master_user_password("not-a-secret-1")
        .allocated_storage(20)
        .send()
        .await
        .map_err(|e| seed_err("CreateDBInstance")(format!("{e:?}")))?;
    let arn = made
        .db_instance()
        .and_then(|d| d.db_instance_arn())
        .unwrap_or_default()
        .to_string();
    west_rds
        .create_db_instance_read_replica()
        .db_instance_identifier(&replica)
        .source_db_instance_identifier(arn)
        .db_instance_class("db.t3.micro")
        .send()
        .await
        .map_err(|e| seed_err("CreateDBInstanceReadReplica")(format!("{e:?}")))?;
    let ecs_cluster = format!("west-{tag}");
    let ecs_service = "app".to_string();
    west_ecs
        .create_cluster()
        .cluster_name(&ecs_cluster)
        .send()
        .await
        .map_err(|e| seed_err("CreateCluster")(format!("{e:?}")))?;
    west_ecs
        .register_task_definition()
        .family(format!("app-{tag}"))
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image("public.ecr.aws/nginx/nginx:stable")
                .memory(128)
                .build(),
        )
        .send()
        .await
        .map_err(|e| seed_err("RegisterTaskDefinition")(format!("{e:?}")))?;
    west_ecs
        .create_service()
        .cluster(&ecs_cluster)
        .service_name(&ecs_service)
        .task_definition(format!("app-{tag}"))
        .desired_count(0)
        .send()
        .await
        .map_err(|e| seed_err("CreateService")(format!("{e:?}")))?;
    let west_eks = aws_sdk_eks::Client::new(&west);
    let eks_cluster = format!("west-{tag}");
    let nodegroup = "workers".to_string();
    let role = "arn:aws:iam::123456789012:role/floatover-test";
    west_eks
        .create_cluster()
        .name(&eks_cluster)
        .role_arn(role)
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-0000000000000000a")
                .build(),
        )
        .send()
        .await
        .map_err(|e| seed_err("CreateCluster (EKS)")(format!("{e:?}")))?;
    west_eks
        .create_nodegroup()
        .cluster_name(&eks_cluster)
        .nodegroup_name(&nodegroup)
        .node_role(role)
        .subnets("subnet-0000000000000000a")
        .scaling_config(
            aws_sdk_eks::types::NodegroupScalingConfig::builder()
                .min_size(0)
                .max_size(2)
                .desired_size(0)
                .build(),
        )
        .send()
        .await
        .map_err(|e| seed_err("CreateNodegroup")(format!("{e:?}")))?;
    let west_asg = aws_sdk_autoscaling::Client::new(&west);
    let west_ec2 = aws_sdk_ec2::Client::new(&west);
    let image = west_ec2
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .map_err(|e| seed_err("DescribeImages")(format!("{e:?}")))?
        .images()
        .first()
        .and_then(|i| i.image_id())
        .unwrap_or_default()
        .to_string();
    let asg = format!("web-{tag}");
    west_asg
        .create_launch_configuration()
        .launch_configuration_name(&asg)
        .image_id(image)
        .instance_type("t3.micro")
        .send()
        .await
        .map_err(|e| seed_err("CreateLaunchConfiguration")(format!("{e:?}")))?;
    west_asg
        .create_auto_scaling_group()
        .auto_scaling_group_name(&asg)
        .launch_configuration_name(&asg)
        .min_size(0)
        .max_size(4)
        .desired_capacity(0)
        .availability_zones("us-west-2a")
        .send()
        .await
        .map_err(|e| seed_err("CreateAutoScalingGroup")(format!("{e:?}")))?;
    let w = DataWorld {
        primary,
        replica,
        ecs_cluster,
        ecs_service,
        eks_cluster,
        nodegroup,
        asg,
        west_rds,
        west_eks,
        west_asg,
        west_ecs,
        west_cloudwatch,
    };
    Ok(w)
}

impl DataWorld {
    /// Publish the replica's `ReplicaLag` (seconds) now.
    pub async fn set_lag(&self, seconds: f64) -> Result<(), DevkitError> {
        use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
        self.west_cloudwatch
            .put_metric_data()
            .namespace("AWS/RDS")
            .metric_data(
                MetricDatum::builder()
                    .metric_name("ReplicaLag")
                    .dimensions(
                        Dimension::builder()
                            .name("DBInstanceIdentifier")
                            .value(&self.replica)
                            .build(),
                    )
                    .value(seconds)
                    .unit(StandardUnit::Seconds)
                    .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from(
                        std::time::SystemTime::now(),
                    ))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| seed_err("PutMetricData")(format!("{e:?}")))
    }

    /// The replica's source (None once promoted).
    pub async fn replica_source(&self) -> Option<String> {
        self.west_rds
            .describe_db_instances()
            .db_instance_identifier(&self.replica)
            .send()
            .await
            .ok()?
            .db_instances()
            .first()?
            .read_replica_source_db_instance_identifier()
            .map(str::to_string)
    }

    /// The node group's desired size.
    pub async fn nodegroup_desired(&self) -> Option<i32> {
        self.west_eks
            .describe_nodegroup()
            .cluster_name(&self.eks_cluster)
            .nodegroup_name(&self.nodegroup)
            .send()
            .await
            .ok()?
            .nodegroup()?
            .scaling_config()?
            .desired_size()
    }

    /// The Auto Scaling group's instances in service.
    pub async fn asg_in_service(&self) -> usize {
        self.west_asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&self.asg)
            .send()
            .await
            .ok()
            .and_then(|o| {
                o.auto_scaling_groups().first().map(|g| {
                    g.instances()
                        .iter()
                        .filter(|i| {
                            i.lifecycle_state()
                                == Some(&aws_sdk_autoscaling::types::LifecycleState::InService)
                        })
                        .count()
                })
            })
            .unwrap_or(0)
    }

    /// The ECS service's desired count.
    pub async fn ecs_desired(&self) -> Option<i32> {
        self.west_ecs
            .describe_services()
            .cluster(&self.ecs_cluster)
            .services(&self.ecs_service)
            .send()
            .await
            .ok()?
            .services()
            .first()
            .map(|s| s.desired_count())
    }
}

/// An Aurora Global Database on moto: the global cluster, its writer in us-east-1 and a
/// secondary in us-west-2 (names suffixed with `tag`).
pub struct AuroraWorld {
    pub global: String,
    pub writer: String,
    pub secondary: String,
    pub west_rds: aws_sdk_rds::Client,
}

pub async fn seed_aurora(endpoint: &str, tag: &str) -> Result<AuroraWorld, DevkitError> {
    let east_rds = aws_sdk_rds::Client::new(&conf(endpoint, "us-east-1").await);
    let west_rds = aws_sdk_rds::Client::new(&conf(endpoint, "us-west-2").await);
    let global = format!("app-{tag}");
    let writer = format!("app-east-{tag}");
    let secondary = format!("app-west-{tag}");
    east_rds
        .create_global_cluster()
        .global_cluster_identifier(&global)
        .engine("aurora-postgresql")
        .engine_version("15.4")
        .send()
        .await
        .map_err(|e| seed_err("CreateGlobalCluster")(format!("{e:?}")))?;
    east_rds
        .create_db_cluster()
        .db_cluster_identifier(&writer)
        .engine("aurora-postgresql")
        .engine_version("15.4")
        .master_username("floatover")
        .master_user_password("not-a-secret-1")
        .global_cluster_identifier(&global)
        .send()
        .await
        .map_err(|e| seed_err("CreateDBCluster")(format!("{e:?}")))?;
    west_rds
        .create_db_cluster()
        .db_cluster_identifier(&secondary)
        .engine("aurora-postgresql")
        .engine_version("15.4")
        .global_cluster_identifier(&global)
        .send()
        .await
        .map_err(|e| seed_err("CreateDBCluster")(format!("{e:?}")))?;
    Ok(AuroraWorld {
        global,
        writer,
        secondary,
        west_rds,
    })
}

impl AuroraWorld {
    /// Each member of the global cluster: (its region, writer?).
    pub async fn members(&self) -> Vec<(String, bool)> {
        let Ok(out) = self.west_rds.describe_global_clusters().send().await else {
            return vec![];
        };
        out.global_clusters()
            .iter()
            .filter(|g| g.global_cluster_identifier() == Some(self.global.as_str()))
            .flat_map(|g| g.global_cluster_members())
            .map(|m| {
                let region = m
                    .db_cluster_arn()
                    .and_then(|a| a.split(':').nth(3))
                    .unwrap_or("")
                    .to_string();
                (region, m.is_writer().unwrap_or(false))
            })
            .collect()
    }
}
