//! AWS operations of a site's data and services: RDS (DescribeDBInstances,
//! PromoteReadReplica; Aurora: DescribeDBClusters, DescribeGlobalClusters,
//! SwitchoverGlobalCluster, RemoveFromGlobalCluster), CloudWatch (GetMetricData: replication lag), ECS
//! (DescribeServices, UpdateService) and EKS (DescribeNodegroup, UpdateNodegroupConfig).
//! Each call goes through [`timed`] (a tracing span, metrics, errors as
//! `op in region: Code: message`). A resource that does not exist reads as None, so the
//! caller can say so in its own words.

use crate::metrics::Metrics;
use crate::provider::ProviderError;
use crate::provider::aws::timed;
use crate::provider::sites::{
    ClusterView, DbView, GlobalMember, NodegroupScaling, NodegroupView, ServiceView,
};

/// One region's clients for the data side.
#[derive(Clone)]
pub struct DataClients {
    pub rds: aws_sdk_rds::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub eks: aws_sdk_eks::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn uncount(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// True for the error a missing resource gets.
fn missing(e: &ProviderError, codes: &[&str]) -> bool {
    matches!(e, ProviderError::Api { code, .. } if codes.contains(&code.as_str()))
}

pub async fn db_instance(
    c: &DataClients,
    m: &Metrics,
    region: &str,
    id: &str,
) -> Result<Option<DbView>, ProviderError> {
    let call = c
        .rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send();
    let out = match timed(m, "rds", "DescribeDBInstances", region, call).await {
        Ok(o) => o,
        Err(e) if missing(&e, &["DBInstanceNotFound", "DBInstanceNotFoundFault"]) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    Ok(out
        .db_instances()
        .iter()
        .find(|d| d.db_instance_identifier() == Some(id))
        .map(|d| DbView {
            status: d.db_instance_status().unwrap_or("unknown").to_string(),
            replica_of: d
                .read_replica_source_db_instance_identifier()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        }))
}

pub async fn promote_read_replica(
    c: &DataClients,
    m: &Metrics,
    region: &str,
    id: &str,
) -> Result<(), ProviderError> {
    let call = c
        .rds
        .promote_read_replica()
        .db_instance_identifier(id)
        .send();
    timed(m, "rds", "PromoteReadReplica", region, call)
        .await
        .map(|_| ())
}

pub async fn db_cluster(
    c: &DataClients,
    m: &Metrics,
    region: &str,
    id: &str,
) -> Result<Option<ClusterView>, ProviderError> {
    let call = c
        .rds
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send();
    let out = match timed(m, "rds", "DescribeDBClusters", region, call).await {
        Ok(o) => o,
        Err(e) if missing(&e, &["DBClusterNotFoundFault", "DBClusterNotFound"]) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    Ok(out
        .db_clusters()
        .iter()
        .find(|d| d.db_cluster_identifier() == Some(id))
        .map(|d| ClusterView {
            arn: d.db_cluster_arn().unwrap_or_default().to_string(),
            status: d.status().unwrap_or("unknown").to_string(),
        }))
}

pub async fn global_cluster(
    c: &DataClients,
    m: &Metrics,
    region: &str,
    id: &str,
) -> Result<Option<Vec<GlobalMember>>, ProviderError> {
    let call = c
        .rds
        .describe_global_clusters()
        .global_cluster_identifier(id)
        .send();
    let out = match timed(m, "rds", "DescribeGlobalClusters", region, call).await {
        Ok(o) => o,
        Err(e) if missing(&e, &["GlobalClusterNotFoundFault", "GlobalClusterNotFound"]) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    Ok(out
        .global_clusters()
        .iter()
        .find(|g| g.global_cluster_identifier() == Some(id))
        .map(|g| {
            g.global_cluster_members()
                .iter()
                .map(|mb| GlobalMember {
                    arn: mb.db_cluster_arn().unwrap_or_default().to_string(),
                    writer: mb.is_writer().unwrap_or(false),
                })
                .collect()
        }))
}

pub async fn switchover_global_cluster(
    c: &DataClients,
    m: &Metrics,
    region: &str,
    global: &str,
    target: &str,
) -> Result<(), ProviderError> {
    let call = c
        .rds
        .switchover_global_cluster()
        .global_cluster_identifier(global)
        .target_db_cluster_identifier(target)
        .send();
    timed(m, "rds", "SwitchoverGlobalCluster", region, call)
        .await
        .map(|_| ())
}

pub async fn detach_from_global_cluster(
    c: &DataClients,
    m: &Metrics,
    region: &str,
    global: &str,
    cluster: &str,
) -> Result<(), ProviderError> {
    let call = c
        .rds
        .remove_from_global_cluster()
        .global_cluster_identifier(global)
        .db_cluster_identifier(cluster)
        .send();
    timed(m, "rds", "RemoveFromGlobalCluster", region, call)
        .await
        .map(|_| ())
}

pub async fn metric_latest(
    c: &DataClients,
    m: &Metrics,
    region: &str,
    namespace: &str,
    metric: &str,
    (dim, value): (&str, &str),
) -> Result<Option<f64>, ProviderError> {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
    let now = std::time::SystemTime::now();
    let start = now
        .checked_sub(std::time::Duration::from_secs(600))
        .unwrap_or(std::time::UNIX_EPOCH);
    let end = now + std::time::Duration::from_secs(60);
    let query = MetricDataQuery::builder()
        .id("lag")
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(namespace)
                        .metric_name(metric)
                        .dimensions(Dimension::builder().name(dim).value(value).build())
                        .build(),
                )
                .period(60)
                .stat("Maximum")
                .build(),
        )
        .build();
    let call = c
        .cloudwatch
        .get_metric_data()
        .metric_data_queries(query)
        .start_time(DateTime::from(start))
        .end_time(DateTime::from(end))
        .scan_by(ScanBy::TimestampDescending)
        .send();
    let out = timed(m, "cloudwatch", "GetMetricData", region, call).await?;
    // Newest first (TimestampDescending); sorted again in case an endpoint ignores it.
    let newest = out
        .metric_data_results()
        .iter()
        .flat_map(|r| r.timestamps().iter().zip(r.values()))
        .max_by_key(|(t, _)| (t.secs(), t.subsec_nanos()))
        .map(|(_, v)| *v);
    Ok(newest)
}

pub async fn ecs_service(
    c: &DataClients,
    m: &Metrics,
    region: &str,
    cluster: &str,
    service: &str,
) -> Result<Option<ServiceView>, ProviderError> {
    let call = c
        .ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send();
    let out = match timed(m, "ecs", "DescribeServices", region, call).await {
        Ok(o) => o,
        Err(e) if missing(&e, &["ClusterNotFoundException"]) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(s) = out
        .services()
        .iter()
        .find(|s| s.service_name() == Some(service) && s.status() != Some("INACTIVE"))
    else {
        return Ok(None);
    };
    let primary = s
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"));
    Ok(Some(ServiceView {
        desired: uncount(s.desired_count()),
        running: uncount(s.running_count()),
        pending: uncount(s.pending_count()),
        deployments: u32::try_from(s.deployments().len()).unwrap_or(u32::MAX),
        rollout: primary
            .and_then(|d| d.rollout_state())
            .map(|r| r.as_str().to_string()),
    }))
}

pub async fn set_ecs_desired(
    c: &DataClients,
    m: &Metrics,
    region: &str,
    cluster: &str,
    service: &str,
    desired: u32,
) -> Result<(), ProviderError> {
    let call = c
        .ecs
        .update_service()
        .cluster(cluster)
        .service(service)
        .desired_count(count(desired))
        .send();
    timed(m, "ecs", "UpdateService", region, call)
        .await
        .map(|_| ())
}

pub async fn nodegroup(
    c: &DataClients,
    m: &Metrics,
    region: &str,
    cluster: &str,
    nodegroup: &str,
) -> Result<Option<NodegroupView>, ProviderError> {
    let call = c
        .eks
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(nodegroup)
        .send();
    let out = match timed(m, "eks", "DescribeNodegroup", region, call).await {
        Ok(o) => o,
        Err(e) if missing(&e, &["ResourceNotFoundException"]) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(out.nodegroup().map(|n| {
        let sc = n.scaling_config();
        NodegroupView {
            status: n
                .status()
                .map_or_else(|| "unknown".into(), |s| s.as_str().to_string()),
            desired: sc.and_then(|s| s.desired_size()).map_or(0, uncount),
            min: sc.and_then(|s| s.min_size()).map_or(0, uncount),
            max: sc.and_then(|s| s.max_size()).map_or(0, uncount),
        }
    }))
}

pub async fn set_nodegroup_scaling(
    c: &DataClients,
    m: &Metrics,
    region: &str,
    cluster: &str,
    nodegroup: &str,
    s: NodegroupScaling,
) -> Result<(), ProviderError> {
    let scaling = aws_sdk_eks::types::NodegroupScalingConfig::builder()
        .desired_size(count(s.desired))
        .set_min_size(s.min.map(count))
        .set_max_size(s.max.map(count))
        .build();
    let call = c
        .eks
        .update_nodegroup_config()
        .cluster_name(cluster)
        .nodegroup_name(nodegroup)
        .scaling_config(scaling)
        .send();
    timed(m, "eks", "UpdateNodegroupConfig", region, call)
        .await
        .map(|_| ())
}
