//! Where every family is registered with its name and HELP line (one function per area).

use super::Metrics;
use prometheus_client::registry::Registry;

/// Register the families of the provider queues and the shared reads.
pub(super) fn register_queues(registry: &mut Registry, m: &Metrics) {
    registry.register(
        "provider_queue_pending",
        "Calls waiting for a client-side token, by API and region",
        m.queue_pending.clone(),
    );
    registry.register(
        "provider_queue_drain_seconds",
        "Expected time until every waiting call of the API has its token, at the bucket's rate",
        m.queue_drain.clone(),
    );
    registry.register(
        "move_token_wait_seconds",
        "How long each move waited for its provider token",
        m.token_wait.clone(),
    );
    registry.register(
        "stamp_batch_resources",
        "Resources stamped by one CreateTags call",
        m.stamp_batch.clone(),
    );
    registry.register(
        "observe_reads",
        "Shared provider reads (one per lane and tick, for every group), by lane and outcome",
        m.observe_reads.clone(),
    );
}

/// Register the families of the leader, targets, floats, config and the engine.
pub(super) fn register_controller(registry: &mut Registry, m: &Metrics) {
    registry.register(
        "leader",
        "1 if this replica holds the lease and may mutate",
        m.leader.clone(),
    );
    registry.register(
        "epoch",
        "Leadership epoch this replica last held or saw",
        m.epoch.clone(),
    );
    registry.register(
        "vote_peer_up",
        "Health votes: 1 while the peer's view of the targets arrives, 0 while it does not",
        m.vote_peer_up.clone(),
    );
    registry.register(
        "lease_member_up",
        "Quorum lease: 1 while the member answers this replica, 0 while it does not",
        m.lease_member_up.clone(),
    );
    registry.register(
        "target_health",
        "Target health: 1 up, 0 down, -1 unknown",
        m.target_health.clone(),
    );
    registry.register(
        "probe_duration_seconds",
        "Probe latency",
        m.probe_duration.clone(),
    );
    registry.register(
        "probe_failures",
        "Failed probe executions",
        m.probe_failures.clone(),
    );
    registry.register(
        "float_owner",
        "1 for the target that holds the float",
        m.float_owner.clone(),
    );
    registry.register(
        "float_on_desired",
        "1 while the float is on its desired owner (or has its desired weights); set by the leader",
        m.float_on_desired.clone(),
    );
    registry.register(
        "config_reloads",
        "Config reloads (SIGHUP or the file changed), by outcome: applied or rejected",
        m.config_reloads.clone(),
    );
    registry.register(
        "config_valid",
        "1 while the config file is the one running; 0 after a rejected reload",
        m.config_valid.clone(),
    );
    registry.register("moves", "Float moves by reason", m.moves.clone());
    registry.register(
        "provider_calls",
        "Provider API operations",
        m.provider_calls.clone(),
    );
    registry.register(
        "provider_errors",
        "Provider API operations that failed",
        m.provider_errors.clone(),
    );
}

/// Register the families of provider calls, probes' pacing and the loops.
pub(super) fn register_provider(registry: &mut Registry, m: &Metrics) {
    registry.register(
        "provider_throttles",
        "Provider API throttling responses",
        m.provider_throttles.clone(),
    );
    registry.register(
        "provider_attempts",
        "Every provider API attempt, retries included, by outcome (ok, throttled, server_error, client_error, transport_error)",
        m.provider_attempts.clone(),
    );
    registry.register(
        "log_lines_dropped",
        "Log lines dropped because stderr could not take them (closed or full)",
        m.log_dropped.clone(),
    );
    registry.register(
        "probe_skipped",
        "Probe results discarded because this process could not run the probe on time (local overload), by reason",
        m.probe_skipped.clone(),
    );
    registry.register(
        "probe_late_starts",
        "Probe runs that started more than half an interval after their schedule (the loop then counts its period from the late start)",
        m.probe_late.clone(),
    );
    registry.register(
        "probe_scheduling_lag_seconds",
        "How late this process wakes its timers (local CPU starvation)",
        m.probe_lag.clone(),
    );
    registry.register(
        "overloaded",
        "1 while probes cannot run on schedule and are being shed",
        m.overloaded.clone(),
    );
    registry.register(
        "stalled",
        "1 while the engine or a probe loop makes no progress (the lease is not renewed)",
        m.stalled.clone(),
    );
    registry.register(
        "drift",
        "Floats found changed by someone else, by group and action taken",
        m.drift.clone(),
    );
    registry.register(
        "provider_backoff_seconds",
        "Extra wait before each mutating call while the provider keeps throttling (adaptive)",
        m.backoff.clone(),
    );
    registry.register(
        "claims",
        "Floats re-stamped with a new leader's epoch at takeover",
        m.claims.clone(),
    );
    registry.register(
        "provider_call_duration_seconds",
        "Provider API operation latency incl. retries",
        m.provider_duration.clone(),
    );
}

/// Register the families of DNS batches, N+1 checks and sites.
pub(super) fn register_sites_and_dns(registry: &mut Registry, m: &Metrics) {
    registry.register(
        "fenced",
        "Mutations refused by the fence (lease too old or newer epoch seen)",
        m.fenced.clone(),
    );
    registry.register(
        "reconcile_duration_seconds",
        "One observe-plan-execute pass",
        m.reconcile_duration.clone(),
    );
    registry.register(
        "dns_batches",
        "Route 53 change batches sent, by outcome (applied, conflict, error)",
        m.dns_batches.clone(),
    );
    registry.register(
        "dns_insync_seconds",
        "From a Route 53 change batch to INSYNC",
        m.dns_insync.clone(),
    );
    registry.register(
        "below_min_healthy",
        "1 while an active-active group has fewer healthy targets than min_healthy",
        m.below_min_healthy.clone(),
    );
    registry.register(
        "below_min_capacity",
        "1 while an active-active group's healthy targets' weights sum to less than min_capacity",
        m.below_min_capacity.clone(),
    );
    registry.register(
        "site_active",
        "1 for the site that takes the traffic (as recorded beside the lease)",
        m.site_active.clone(),
    );
    registry.register(
        "site_ready",
        "1 while the site's promotion plan passed pre-flight (could run now), 0 when not (status says why)",
        m.site_ready.clone(),
    );
    registry.register(
        "site_promotions",
        "Site promotions and drills finished, by site, kind and outcome",
        m.site_promotions.clone(),
    );
    registry.register(
        "site_step_over_budget",
        "Promotion steps that took longer than their budget (and whole runs over the RTO: step=\"(total)\")",
        m.site_step_over_budget.clone(),
    );
    registry.register(
        "site_step_seconds",
        "How long each step of the site's last promotion took",
        m.site_step_seconds.clone(),
    );
}
