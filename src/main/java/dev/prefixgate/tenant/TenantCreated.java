package dev.prefixgate.tenant;

/**
 * Fired (as a CDI event, after the transaction commits) when a tenant is created, so that the
 * adapter-event consumer can replay the adapters already published for it.
 */
public record TenantCreated(String tenantId) {}
