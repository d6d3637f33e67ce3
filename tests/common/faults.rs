//! Helpers shared by the fault tests: lease timings of the default scenario, the fencing
//! invariants checked at the end of each test, two proxied replicas.

use super::{Env, Proxies};
use floatover_devkit::invariants;
use floatover_devkit::replica::Stderr;
use std::time::Duration;

pub const LEASE: Duration = Duration::from_millis(4_000);
pub const RENEW: Duration = Duration::from_millis(2_500);
pub const RETRY: Duration = Duration::from_millis(500);
pub const CALL: Duration = Duration::from_millis(1_500);

/// Common end-of-test checks: leaders never overlapped at the provider and every mutating
/// call was inside its sender's fence.
pub fn check_fencing(env: &Env, proxies: &[(usize, &Proxies)]) {
    let logs: Vec<(String, Vec<_>, Vec<_>)> = proxies
        .iter()
        .map(|(i, p)| (env.replicas[*i].name.clone(), p.ec2.log(), p.s3.log()))
        .collect();
    let refs: Vec<(&str, &[_])> = logs
        .iter()
        .map(|(n, e, _)| (n.as_str(), e.as_slice()))
        .collect();
    if let Err(e) = invariants::no_overlap_between_replicas(&refs) {
        env.dump_logs();
        panic!("two leaders acted at once: {e}");
    }
    for (name, ec2, s3) in &logs {
        if let Err(e) = invariants::within_fence(ec2, s3, RENEW, CALL, Duration::from_millis(100)) {
            env.dump_logs();
            panic!("{name}: mutation outside the fence: {e}");
        }
    }
}

/// The EIP, the secondary IP and the route all on instance `i` (of two).
pub async fn all_floats_on(env: &Env, i: usize) -> bool {
    let w = &env.world;
    let enis = [w.instances[0].eni_id.clone(), w.instances[1].eni_id.clone()];
    let inst = w.instances[i].instance_id.as_str();
    env.eip_holder().await.as_deref() == Some(inst)
        && env.clients.ip_holders(&enis, &w.secondary_ip).await == vec![enis[i].clone()]
        && env
            .clients
            .route_target(&w.route_table_id, &w.route_destination)
            .await
            .as_deref()
            == Some(inst)
}

pub async fn two_replicas(
    env: &mut Env,
    first_env: &[(&str, &str)],
) -> (usize, Proxies, usize, Proxies) {
    let (a, pa) = env.spawn_proxied(first_env, Stderr::LogFile).await;
    assert!(
        env.wait_eip_on(0, Duration::from_secs(20)).await.is_some(),
        "initial assignment"
    );
    assert!(
        env.until(Duration::from_secs(10), || env.leads(a))
            .await
            .is_some()
    );
    let (b, pb) = env.spawn_proxied(&[], Stderr::LogFile).await;
    assert!(
        env.until(Duration::from_secs(10), || async {
            env.replicas[b]
                .get("/readyz")
                .await
                .is_some_and(|(c, _)| c == 200)
        })
        .await
        .is_some(),
        "standby ready"
    );
    (a, pa, b, pb)
}
