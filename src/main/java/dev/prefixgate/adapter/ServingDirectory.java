package dev.prefixgate.adapter;

import dev.prefixgate.PrefixgateConfig;
import dev.prefixgate.tenant.ApiKey;
import dev.prefixgate.tenant.RegistryChanged;
import dev.prefixgate.tenant.RegistryEpoch;
import dev.prefixgate.tenant.Tenant;
import dev.prefixgate.tenant.Tenants;
import io.quarkus.narayana.jta.QuarkusTransaction;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.annotation.Priority;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.enterprise.event.TransactionPhase;
import jakarta.inject.Inject;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.logging.Logger;
import org.hibernate.Session;

/**
 * What the serving path needs from the registry, in memory: which tenant a key opens, and which
 * adapter versions each tenant may be served. A request never waits for the database, and serving
 * of known tenants and adapters goes on while it is away.
 *
 * <p>Kept current by the registry's change counter ({@link RegistryEpoch}): a local change reloads
 * the snapshot as soon as its transaction commits; every replica polls the counter every {@code
 * prefixgate.registry.refresh-millis} and reloads when it moved, so a revocation or an activation
 * made on any replica holds everywhere within that interval plus one reload. While the database is
 * unreachable nothing can be committed (for any replica sharing it), so the snapshot stays exact; a
 * replica that alone lost the database serves from it for at most {@code
 * prefixgate.registry.max-stale-seconds}, then answers 503.
 */
@ApplicationScoped
public class ServingDirectory {
  private static final Logger LOG = Logger.getLogger(ServingDirectory.class.getName());

  /** A detached copy of what serving reads; never written back. */
  record Snapshot(
      long epoch,
      Map<String, Tenant> tenantsByKeyHash,
      Map<String, AdapterVersion> servable,
      Map<String, List<AdapterVersion>> activeByTenant) {
    static final Snapshot EMPTY = new Snapshot(-1, Map.of(), Map.of(), Map.of());
  }

  @Inject RegistryEpoch epoch;
  @Inject Session db;
  @Inject PrefixgateConfig config;

  private volatile Snapshot snapshot = Snapshot.EMPTY;
  private volatile long lastContactNanos = System.nanoTime();
  private volatile boolean unreachable;
  private long lastAttemptNanos; // poller thread only
  private ScheduledExecutorService poller;

  void start(@Observes @Priority(10) StartupEvent ignored) {
    reload();
    poller =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "prefixgate-registry-poll");
              t.setDaemon(true);
              return t;
            });
    long every = Math.max(10, config.registry().refreshMillis());
    poller.scheduleWithFixedDelay(this::poll, every, every, TimeUnit.MILLISECONDS);
  }

  void stop(@Observes ShutdownEvent ignored) {
    if (poller != null) poller.shutdownNow();
  }

  /** A change committed on this replica: visible to its next request. */
  void changed(@Observes(during = TransactionPhase.AFTER_SUCCESS) RegistryChanged ignored) {
    // One transaction may bump the counter more than once (a registration that also activates):
    // the first reload already holds them all, so the others cost one small query, not a reload.
    try {
      if (QuarkusTransaction.requiringNew().call(epoch::current) == snapshot.epoch()) return;
    } catch (Exception e) {
      // fall through: reload() logs and keeps the previous snapshot if the database is away
    }
    reload();
  }

  /** The tenant a key opens, if the key exists and is not revoked. */
  public Optional<Tenant> authenticate(String key) {
    if (key == null || key.isEmpty()) return Optional.empty();
    return Optional.ofNullable(current().tenantsByKeyHash().get(Tenants.hash(key)));
  }

  /** The active version of a tenant's adapter. */
  public Optional<AdapterVersion> active(String tenantId, String name) {
    return current().activeByTenant().getOrDefault(tenantId, List.of()).stream()
        .filter(v -> v.name.equals(name))
        .findFirst();
  }

  /** A specific servable (registered or active) version. */
  public Optional<AdapterVersion> version(String tenantId, String name, int version) {
    return Optional.ofNullable(current().servable().get(tenantId + "/" + name + "@" + version));
  }

  /** A tenant's active adapters, by name. */
  public List<AdapterVersion> activeAdapters(String tenantId) {
    return current().activeByTenant().getOrDefault(tenantId, List.of());
  }

  /** The snapshot's change counter (for tests and health). */
  public long epoch() {
    return snapshot.epoch();
  }

  /** Whether the last poll reached the database. */
  public boolean reachable() {
    return !unreachable;
  }

  /** Seconds since the database last answered this replica. */
  public long staleSeconds() {
    return TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - lastContactNanos);
  }

  private Snapshot current() {
    if (unreachable && staleSeconds() > config.registry().maxStaleSeconds()) {
      throw new RegistryUnavailable(
          "the registry database has not answered for "
              + staleSeconds()
              + " s (over prefixgate.registry.max-stale-seconds="
              + config.registry().maxStaleSeconds()
              + ")");
    }
    return snapshot;
  }

  /** Serving refused because this replica's view of the registry may be out of date. */
  public static final class RegistryUnavailable extends RuntimeException {
    RegistryUnavailable(String message) {
      super(message, null, false, false);
    }
  }

  private void poll() {
    // While the database is away, try once a second: each failed attempt costs a connect timeout
    // and log lines from the pool.
    if (unreachable && System.nanoTime() - lastAttemptNanos < TimeUnit.SECONDS.toNanos(1)) return;
    lastAttemptNanos = System.nanoTime();
    try {
      long now = QuarkusTransaction.requiringNew().call(epoch::current);
      lastContactNanos = System.nanoTime();
      if (unreachable) {
        unreachable = false;
        LOG.info("registry database reachable again");
      }
      if (now != snapshot.epoch()) reload();
    } catch (Exception e) {
      if (!unreachable) {
        unreachable = true;
        LOG.warning(
            "registry database unreachable ("
                + e.getClass().getSimpleName()
                + "); serving from the snapshot of epoch "
                + snapshot.epoch());
      }
    }
  }

  private synchronized void reload() {
    try {
      Snapshot s = QuarkusTransaction.requiringNew().call(this::load);
      lastContactNanos = System.nanoTime();
      if (s.epoch() >= snapshot.epoch()) snapshot = s;
    } catch (Exception e) {
      // The poller retries; serving keeps the previous snapshot.
      LOG.warning("registry reload failed: " + e);
    }
  }

  private Snapshot load() {
    // The counter first: a change committed while the rest is read moves it past this value,
    // so the next poll reloads again.
    long at = epoch.current();
    Map<String, Tenant> tenants = new HashMap<>();
    for (Tenant t : db.createSelectionQuery("from Tenant", Tenant.class).getResultList()) {
      tenants.put(t.id, copy(t));
    }
    Map<String, Tenant> byKey = new HashMap<>();
    for (ApiKey k :
        db.createSelectionQuery("from ApiKey where revokedAt is null", ApiKey.class)
            .getResultList()) {
      Tenant t = tenants.get(k.tenantId);
      if (t != null) byKey.put(k.keyHash, t);
    }
    Map<String, AdapterVersion> servable = new HashMap<>();
    Map<String, List<AdapterVersion>> active = new HashMap<>();
    for (AdapterVersion v :
        db.createSelectionQuery("from AdapterVersion where status in ?1", AdapterVersion.class)
            .setParameter(
                1, List.of(AdapterVersion.Status.ACTIVE, AdapterVersion.Status.REGISTERED))
            .getResultList()) {
      AdapterVersion c = copy(v);
      servable.put(c.tenantId + "/" + c.name + "@" + c.version, c);
      if (c.status == AdapterVersion.Status.ACTIVE) {
        active.computeIfAbsent(c.tenantId, x -> new ArrayList<>()).add(c);
      }
    }
    active.replaceAll(
        (t, list) ->
            list.stream().sorted(Comparator.comparing((AdapterVersion v) -> v.name)).toList());
    return new Snapshot(at, Map.copyOf(byKey), Map.copyOf(servable), Map.copyOf(active));
  }

  private static Tenant copy(Tenant t) {
    Tenant c = new Tenant();
    c.id = t.id;
    c.displayName = t.displayName;
    c.defaultAdapter = t.defaultAdapter;
    c.allowBase = t.allowBase;
    c.createdAt = t.createdAt;
    return c;
  }

  private static AdapterVersion copy(AdapterVersion v) {
    AdapterVersion c = new AdapterVersion();
    c.tenantId = v.tenantId;
    c.name = v.name;
    c.version = v.version;
    c.digest = v.digest;
    c.numVirtualTokens = v.numVirtualTokens;
    c.status = v.status;
    c.createdAt = v.createdAt;
    return c;
  }
}
