//! EC2 operations of site promotion (StartInstances, DescribeInstances), with a client per
//! region built on first use: a site's region need not host any float.

use crate::aws::{AwsSpec, sdk_config};
use crate::metrics::Metrics;
use crate::provider::ProviderError;
use crate::provider::aws::timed;
use crate::provider::sites::SiteOps;
use aws_sdk_ec2::Client;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::Mutex;

pub struct Ec2SiteOps {
    aws: AwsSpec,
    metrics: Arc<Metrics>,
    clients: Mutex<HashMap<String, Client>>,
}

impl Ec2SiteOps {
    pub fn new(aws: &AwsSpec, metrics: Arc<Metrics>) -> Self {
        Ec2SiteOps {
            aws: aws.clone(),
            metrics,
            clients: Mutex::new(HashMap::new()),
        }
    }

    async fn client(&self, region: &str) -> Client {
        let mut g = self.clients.lock().await;
        if let Some(c) = g.get(region) {
            return c.clone();
        }
        let conf = sdk_config(
            region,
            self.aws.endpoint_url.as_deref(),
            self.aws.call_timeout,
            self.aws.max_attempts,
        )
        .await;
        let c = Client::new(&conf);
        g.insert(region.to_string(), c.clone());
        c
    }
}

#[async_trait::async_trait]
impl SiteOps for Ec2SiteOps {
    async fn start_instances(&self, region: &str, ids: &[String]) -> Result<(), ProviderError> {
        let client = self.client(region).await;
        let call = client
            .start_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send();
        timed(&self.metrics, "ec2", "StartInstances", region, call)
            .await
            .map(|_| ())
    }

    async fn instance_states(
        &self,
        region: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        let client = self.client(region).await;
        let call = client
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
                    i.state()?.name()?.as_str().to_string(),
                ))
            })
            .collect())
    }

    async fn can_start(&self, region: &str, ids: &[String]) -> Result<(), ProviderError> {
        let client = self.client(region).await;
        let call = client
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
        let client = self.client(region).await;
        let mut req = client.describe_launch_templates();
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
        let client = self.client(region).await;
        let call = client.describe_images().image_ids(image).send();
        match timed(&self.metrics, "ec2", "DescribeImages", region, call).await {
            Ok(o) => Ok(!o.images().is_empty()),
            Err(ProviderError::Api { code, .. }) if code.starts_with("InvalidAMIID") => Ok(false),
            Err(e) => Err(e),
        }
    }
}
