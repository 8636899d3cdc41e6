"""The ``error`` codes of the service's answers."""

from __future__ import annotations

ERROR_CODES = (
    # refused before any route: the Host, the local user, the body, the origin, the caller
    "host_not_allowed", "local_user_not_allowed", "request_entity_too_large", "unsupported_media_type",
    "request_timeout", "incomplete_body", "uri_too_long", "request_header_fields_too_large",
    "cross_origin", "csrf", "unauthorized", "too_many_attempts", "sender_not_allowed",
    # no such route or method; a service not ready; a fault of katuna's own; another HTTP error
    "not_found", "method_not_allowed", "not_acceptable", "not_ready", "internal_server_error", "http_error",
    # katuna's errors (:func:`functions.adapters.web.errors.error_code`)
    "malformed_request", "malformed_event", "malformed_event_data", "page_refused", "unparseable_study", "invalid_study",
    "refused_workload", "config_map_forbidden", "unreadable_spec", "damaged_journal", "unreadable_file", "refused_file",
    "study_not_found", "study_conflict", "too_many_studies", "too_many_pools", "restart_through_resource", "study_runs_elsewhere", "follows_resource",
    "forged_event", "forged_report",
    "unknown_event_type", "newer_event_type", "unknown_function", "no_kubernetes_api", "output_lost", "log_gone", "no_command",
    "not_renderable", "node_pool_failed",
    "no_node_pools", "permanent_error", "temporary_error", "service_busy", "quota_full", "no_room_for_study",
    "storage_unavailable", "storage_full", "foreign_database", "unread_key",
    "newer_database", "logs_unavailable", "stopping", "invalid_setting", "checkpoint_clash",
)
"""Every ``error`` an answer may carry, snake_case: a client switches on these."""
