package dev.prefixgate.tenant;

/** Fired inside a transaction that changed tenants, keys or adapter versions. */
public record RegistryChanged() {}
