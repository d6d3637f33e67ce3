//! AWS operations of site promotion: EC2 (StartInstances, RunInstances, DescribeInstances,
//! launch templates, AMIs) and Auto Scaling (DescribeAutoScalingGroups,
//! SetDesiredCapacity), with clients per region built on first use: a site's region need
//! not host any float.

use crate::aws::{AwsSpec, sdk_config};
use crate::metrics::Metrics;
use crate::provider::ProviderError;
use crate::provider::aws::data::{self, DataClients};
use crate::provider::aws::timed;
use crate::provider::sites::{
    ClusterView, DbView, GlobalMember, InstanceView, LaunchRequest, NodegroupScaling,
    NodegroupView, ScalingView, ServiceView, SiteOps,
};
use aws_sdk_ec2::types::{
    Filter, InstanceType, LaunchTemplateSpecification, ResourceType, Tag, TagSpecification,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::Mutex;

#[derive(Clone)]
struct Clients {
    ec2: aws_sdk_ec2::Client,
    asg: aws_sdk_autoscaling::Client,
}

pub struct AwsSiteOps {
    aws: AwsSpec,
    metrics: Arc<Metrics>,
    clients: Mutex<HashMap<String, Clients>>,
    data: Mutex<HashMap<String, DataClients>>,
}

impl AwsSiteOps {
    pub fn new(aws: &AwsSpec, metrics: Arc<Metrics>) -> Self {
        AwsSiteOps {
            aws: aws.clone(),
            metrics,
            clients: Mutex::new(HashMap::new()),
            data: Mutex::new(HashMap::new()),
        }
    }

    /// For tests: fixed clients for one region (aws-smithy-mocks).
    pub fn with_clients(
        aws: &AwsSpec,
        metrics: Arc<Metrics>,
        region: &str,
        ec2: aws_sdk_ec2::Client,
        asg: aws_sdk_autoscaling::Client,
    ) -> Self {
        let ops = AwsSiteOps::new(aws, metrics);
        ops.clients
            .try_lock()
            .map(|mut g| g.insert(region.to_string(), Clients { ec2, asg }))
            .ok();
        ops
    }

    async fn clients(&self, region: &str) -> Clients {
        let mut g = self.clients.lock().await;
        if let Some(c) = g.get(region) {
            return c.clone();
        }
        let c = Clients {
            ec2: aws_sdk_ec2::Client::new(&self.conf(region, "ec2").await),
            asg: aws_sdk_autoscaling::Client::new(&self.conf(region, "autoscaling").await),
        };
        g.insert(region.to_string(), c.clone());
        c
    }

    /// SDK settings for `service` in `region` (its endpoint override, if any).
    async fn conf(&self, region: &str, service: &str) -> aws_config::SdkConfig {
        sdk_config(
            region,
            self.aws.endpoint_for(service),
            self.aws.call_timeout,
            self.aws.max_attempts,
            self.aws.credentials.clone(),
        )
        .await
    }

    async fn data(&self, region: &str) -> DataClients {
        let mut g = self.data.lock().await;
        if let Some(c) = g.get(region) {
            return c.clone();
        }
        let c = DataClients {
            rds: aws_sdk_rds::Client::new(&self.conf(region, "rds").await),
            ecs: aws_sdk_ecs::Client::new(&self.conf(region, "ecs").await),
            eks: aws_sdk_eks::Client::new(&self.conf(region, "eks").await),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&self.conf(region, "cloudwatch").await),
        };
        g.insert(region.to_string(), c.clone());
        c
    }

    async fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        self.clients(region).await.ec2
    }
}

fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[async_trait::async_trait]
impl SiteOps for AwsSiteOps {
    async fn start_instances(&self, region: &str, ids: &[String]) -> Result<(), ProviderError> {
        let ec2 = self.ec2(region).await;
        let call = ec2
            .start_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send();
        timed(&self.metrics, "ec2", "StartInstances", region, call)
            .await
            .map(|_| ())
    }

    async fn describe_instances(
        &self,
        region: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, InstanceView>, ProviderError> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let ec2 = self.ec2(region).await;
        let call = ec2
            .describe_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send();
        let out = timed(&self.metrics, "ec2", "DescribeInstances", region, call).await?;
        Ok(out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| {
                Some((
                    i.instance_id()?.to_string(),
                    InstanceView {
                        state: i.state()?.name()?.as_str().to_string(),
                        private_ip: i.private_ip_address().map(str::to_string),
                        public_ip: i.public_ip_address().map(str::to_string),
                    },
                ))
            })
            .collect())
    }

    async fn can_start(&self, region: &str, ids: &[String]) -> Result<(), ProviderError> {
        let ec2 = self.ec2(region).await;
        let call = ec2
            .start_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .dry_run(true)
            .send();
        match timed(&self.metrics, "ec2", "StartInstances", region, call).await {
            Ok(_) => Ok(()),
            // "Request would have succeeded, but DryRun flag is set."
            Err(ProviderError::Api { code, .. }) if code == "DryRunOperation" => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn launch_template_exists(
        &self,
        region: &str,
        template: &str,
    ) -> Result<bool, ProviderError> {
        let ec2 = self.ec2(region).await;
        let mut req = ec2.describe_launch_templates();
        req = if template.starts_with("lt-") {
            req.launch_template_ids(template)
        } else {
            req.launch_template_names(template)
        };
        match timed(
            &self.metrics,
            "ec2",
            "DescribeLaunchTemplates",
            region,
            req.send(),
        )
        .await
        {
            Ok(o) => Ok(!o.launch_templates().is_empty()),
            Err(ProviderError::Api { code, .. })
                if code.starts_with("InvalidLaunchTemplateId")
                    || code.starts_with("InvalidLaunchTemplateName") =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn image_exists(&self, region: &str, image: &str) -> Result<bool, ProviderError> {
        let ec2 = self.ec2(region).await;
        let call = ec2.describe_images().image_ids(image).send();
        match timed(&self.metrics, "ec2", "DescribeImages", region, call).await {
            Ok(o) => Ok(!o.images().is_empty()),
            Err(ProviderError::Api { code, .. }) if code.starts_with("InvalidAMIID") => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn run_instances(
        &self,
        region: &str,
        req: &LaunchRequest,
    ) -> Result<Vec<String>, ProviderError> {
        let ec2 = self.ec2(region).await;
        let n = count(req.count);
        let mut call = ec2
            .run_instances()
            .min_count(n)
            .max_count(n)
            .client_token(&req.client_token);
        if let Some(t) = &req.launch_template {
            let spec = LaunchTemplateSpecification::builder();
            let spec = if t.starts_with("lt-") {
                spec.launch_template_id(t)
            } else {
                spec.launch_template_name(t)
            };
            call = call.launch_template(
                spec.version(req.version.as_deref().unwrap_or("$Default"))
                    .build(),
            );
        }
        if let Some(i) = &req.image_id {
            call = call.image_id(i);
        }
        if let Some(t) = &req.instance_type {
            call = call.instance_type(InstanceType::from(t.as_str()));
        }
        if let Some(s) = &req.subnet_id {
            call = call.subnet_id(s);
        }
        let tags: Vec<Tag> = req
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        if !tags.is_empty() {
            call = call.tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(tags))
                    .build(),
            );
        }
        let out = timed(&self.metrics, "ec2", "RunInstances", region, call.send()).await?;
        Ok(out
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect())
    }

    async fn instances_tagged(
        &self,
        region: &str,
        key: &str,
        value: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let ec2 = self.ec2(region).await;
        let call = ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name(format!("tag:{key}"))
                    .values(value)
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(
                        ["pending", "running", "stopping", "stopped"]
                            .map(String::from)
                            .to_vec(),
                    ))
                    .build(),
            )
            .send();
        let out = timed(&self.metrics, "ec2", "DescribeInstances", region, call).await?;
        Ok(out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect())
    }

    async fn scaling_group(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Option<ScalingView>, ProviderError> {
        let asg = self.clients(region).await.asg;
        let call = asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send();
        let out = timed(
            &self.metrics,
            "autoscaling",
            "DescribeAutoScalingGroups",
            region,
            call,
        )
        .await?;
        let Some(g) = out
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(name))
        else {
            return Ok(None);
        };
        let mut view = ScalingView {
            desired: u32::try_from(g.desired_capacity().unwrap_or(0)).unwrap_or(0),
            max: u32::try_from(g.max_size().unwrap_or(0)).unwrap_or(0),
            ..ScalingView::default()
        };
        for i in g.instances() {
            let Some(id) = i.instance_id() else { continue };
            let life = i
                .lifecycle_state()
                .map(|l| l.as_str().to_string())
                .unwrap_or_default();
            if life == "InService" && i.health_status() == Some("Healthy") {
                view.in_service.push(id.to_string());
            }
            view.instances.insert(id.to_string(), life);
        }
        Ok(Some(view))
    }

    async fn set_desired(
        &self,
        region: &str,
        name: &str,
        desired: u32,
    ) -> Result<(), ProviderError> {
        let asg = self.clients(region).await.asg;
        let call = asg
            .set_desired_capacity()
            .auto_scaling_group_name(name)
            .desired_capacity(count(desired))
            .honor_cooldown(false)
            .send();
        timed(
            &self.metrics,
            "autoscaling",
            "SetDesiredCapacity",
            region,
            call,
        )
        .await
        .map(|_| ())
    }

    async fn db_instance(&self, region: &str, id: &str) -> Result<Option<DbView>, ProviderError> {
        data::db_instance(&self.data(region).await, &self.metrics, region, id).await
    }

    async fn promote_read_replica(&self, region: &str, id: &str) -> Result<(), ProviderError> {
        data::promote_read_replica(&self.data(region).await, &self.metrics, region, id).await
    }

    async fn db_cluster(
        &self,
        region: &str,
        id: &str,
    ) -> Result<Option<ClusterView>, ProviderError> {
        data::db_cluster(&self.data(region).await, &self.metrics, region, id).await
    }

    async fn global_cluster(
        &self,
        region: &str,
        id: &str,
    ) -> Result<Option<Vec<GlobalMember>>, ProviderError> {
        data::global_cluster(&self.data(region).await, &self.metrics, region, id).await
    }

    async fn switchover_global_cluster(
        &self,
        region: &str,
        global: &str,
        target: &str,
    ) -> Result<(), ProviderError> {
        let c = self.data(region).await;
        data::switchover_global_cluster(&c, &self.metrics, region, global, target).await
    }

    async fn detach_from_global_cluster(
        &self,
        region: &str,
        global: &str,
        cluster: &str,
    ) -> Result<(), ProviderError> {
        let c = self.data(region).await;
        data::detach_from_global_cluster(&c, &self.metrics, region, global, cluster).await
    }

    async fn metric_latest(
        &self,
        region: &str,
        namespace: &str,
        metric: &str,
        dimension: (&str, &str),
    ) -> Result<Option<f64>, ProviderError> {
        let c = self.data(region).await;
        data::metric_latest(&c, &self.metrics, region, namespace, metric, dimension).await
    }

    async fn ecs_service(
        &self,
        region: &str,
        cluster: &str,
        service: &str,
    ) -> Result<Option<ServiceView>, ProviderError> {
        data::ecs_service(
            &self.data(region).await,
            &self.metrics,
            region,
            cluster,
            service,
        )
        .await
    }

    async fn set_ecs_desired(
        &self,
        region: &str,
        cluster: &str,
        service: &str,
        desired: u32,
    ) -> Result<(), ProviderError> {
        let c = self.data(region).await;
        data::set_ecs_desired(&c, &self.metrics, region, cluster, service, desired).await
    }

    async fn nodegroup(
        &self,
        region: &str,
        cluster: &str,
        nodegroup: &str,
    ) -> Result<Option<NodegroupView>, ProviderError> {
        data::nodegroup(
            &self.data(region).await,
            &self.metrics,
            region,
            cluster,
            nodegroup,
        )
        .await
    }

    async fn set_nodegroup_scaling(
        &self,
        region: &str,
        cluster: &str,
        nodegroup: &str,
        scaling: NodegroupScaling,
    ) -> Result<(), ProviderError> {
        let c = self.data(region).await;
        data::set_nodegroup_scaling(&c, &self.metrics, region, cluster, nodegroup, scaling).await
    }
}
