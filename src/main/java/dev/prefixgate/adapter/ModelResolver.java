package dev.prefixgate.adapter;

import dev.prefixgate.PrefixgateConfig;
import dev.prefixgate.engine.BloomModel;
import dev.prefixgate.engine.PrefixAdapter;
import dev.prefixgate.engine.PrefixCache;
import dev.prefixgate.tenant.Tenant;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.util.Optional;

/**
 * Turns a request's {@code model} field into what to serve for this tenant: its default adapter, a
 * named adapter's active version, {@code name@version}, or the base model where allowed. Another
 * tenant's adapter resolves exactly like a missing one.
 */
@ApplicationScoped
public class ModelResolver {
  /** What a request runs on; {@code lease} is null for the base model. Close when done. */
  public record Resolved(String model, PrefixCache.Lease lease) implements AutoCloseable {
    @Override
    public void close() {
      if (lease != null) lease.close();
    }
  }

  @Inject AdapterRegistry registry;
  @Inject ServingDirectory directory;
  @Inject BloomModel bloom;
  @Inject PrefixCache prefixCache;
  @Inject PrefixgateConfig config;

  /**
   * What {@code requested} names for this tenant, without loading its KV: the adapter version, or
   * null for the base model.
   */
  public record Target(String model, AdapterVersion version) {
    /** Virtual tokens the adapter puts in front of the prompt (0 for the base model). */
    public int prefixTokens() {
      return version == null ? 0 : version.numVirtualTokens;
    }
  }

  /** Empty when the tenant has no such model (the API answers 404). */
  public Optional<Target> target(Tenant tenant, String requested) {
    String name = requested == null || requested.isBlank() ? null : requested.trim();
    String base = config.model().baseName();
    if (name == null) {
      if (tenant.defaultAdapter == null)
        return tenant.allowBase ? Optional.of(new Target(base, null)) : Optional.empty();
      name = tenant.defaultAdapter;
    }
    if (name.equals(base))
      return tenant.allowBase ? Optional.of(new Target(base, null)) : Optional.empty();
    Optional<AdapterVersion> version;
    int at = name.lastIndexOf('@');
    if (at > 0) {
      int v;
      try {
        v = Integer.parseInt(name.substring(at + 1));
      } catch (NumberFormatException e) {
        return Optional.empty();
      }
      version = directory.version(tenant.id, name.substring(0, at), v);
    } else {
      version = directory.active(tenant.id, name);
    }
    return version.map(a -> new Target(a.name + "@" + a.version, a));
  }

  /** Empty when the tenant has no such model (the API answers 404). */
  public Optional<Resolved> resolve(Tenant tenant, String requested) throws Exception {
    Optional<Target> target = target(tenant, requested);
    if (target.isEmpty()) return Optional.empty();
    AdapterVersion a = target.get().version();
    if (a == null) return Optional.of(new Resolved(target.get().model(), null));
    PrefixCache.Lease lease =
        prefixCache.acquire(
            a.digest,
            config.cache().pinnedTenants().map(p -> p.contains(tenant.id)).orElse(false),
            this::load);
    return Optional.of(new Resolved(target.get().model(), lease));
  }

  private dev.prefixgate.engine.PrefixKv load(String digest) throws Exception {
    AdapterBlob blob =
        registry.blob(digest).orElseThrow(() -> new IllegalStateException("no blob for " + digest));
    return PrefixAdapter.read(blob.adapterConfig, blob.safetensors, bloom.config()).kv();
  }
}
