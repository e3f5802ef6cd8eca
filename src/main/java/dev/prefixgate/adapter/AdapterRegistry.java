package dev.prefixgate.adapter;

import dev.prefixgate.engine.AdapterFormatException;
import dev.prefixgate.engine.BaseModel;
import dev.prefixgate.engine.PrefixAdapter;
import dev.prefixgate.tenant.RegistryEpoch;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.transaction.Transactional;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import org.hibernate.Session;

/**
 * Which tenant owns which adapter versions, and which version is active. Every path that adds an
 * adapter (admin upload, Kafka event, demo seeding) goes through {@link #register}, so validation
 * and idempotency are the same everywhere. Blocking (Hibernate ORM): call from worker threads.
 */
@ApplicationScoped
public class AdapterRegistry {
  @Inject RegistryEpoch epoch;
  @Inject Session db;

  /**
   * Where a version came from: the path ({@code upload}, {@code kafka}, {@code demo}) and who sent
   * it (the event's producer, the admin API, the demo seeding).
   */
  public record Origin(String source, String producer) {
    public static final int MAX_PRODUCER = 128;

    public Origin {
      if (producer != null && producer.length() > MAX_PRODUCER) {
        producer = producer.substring(0, MAX_PRODUCER);
      }
    }
  }

  /** Column size of {@code adapter.metrics}. */
  static final int MAX_METRICS_CHARS = 16000;

  /** Result of a registration: the stored version and whether this call created it. */
  public record Registered(AdapterVersion adapter, boolean created) {}

  /**
   * Validates the PEFT files against the served model, then stores them as the next version of
   * {@code name}, or returns the existing version with the same digest (idempotent). Row and blob
   * are written in one transaction; a refused adapter leaves nothing behind.
   *
   * @param base the served model: shapes to check against, and the identity recorded
   * @param origin how the version arrived and who sent it
   * @param metricsJson training metrics to keep with a new version (JSON), or null
   * @throws AdapterFormatException when the files are malformed or do not fit the served model
   */
  @Transactional
  public Registered register(
      String tenantId,
      String name,
      byte[] adapterConfig,
      byte[] safetensors,
      BaseModel base,
      Origin origin,
      boolean activate,
      String metricsJson)
      throws AdapterFormatException {
    PrefixAdapter parsed = PrefixAdapter.read(adapterConfig, safetensors, base.config());
    lockTenant(tenantId);
    AdapterVersion existing =
        first("tenantId = ?1 and name = ?2 and digest = ?3", tenantId, name, parsed.digest());
    if (existing != null) return new Registered(existing, false);
    if (db.find(AdapterBlob.class, parsed.digest()) == null) {
      AdapterBlob blob = new AdapterBlob();
      blob.digest = parsed.digest();
      blob.adapterConfig = adapterConfig;
      blob.safetensors = safetensors;
      blob.createdAt = Instant.now();
      db.persist(blob);
    }
    AdapterVersion last =
        first("tenantId = ?1 and name = ?2 order by version desc", tenantId, name);
    AdapterVersion v = new AdapterVersion();
    v.tenantId = tenantId;
    v.name = name;
    v.version = last == null ? 1 : last.version + 1;
    v.digest = parsed.digest();
    v.numVirtualTokens = parsed.numVirtualTokens();
    // The served base it was checked against; adapter_config.json's name may be a trainer's path.
    v.baseModel = base.name();
    v.baseFingerprint = base.fingerprint();
    // Metrics are informative, never a reason to refuse an adapter: oversize ones are dropped.
    v.metrics =
        metricsJson != null && metricsJson.length() <= MAX_METRICS_CHARS ? metricsJson : null;
    v.status = AdapterVersion.Status.REGISTERED;
    v.source = origin.source();
    v.producer = origin.producer();
    v.createdAt = Instant.now();
    db.persist(v);
    if (activate) activate(tenantId, name, v.version);
    db.flush();
    epoch.bump();
    return new Registered(v, true);
  }

  /**
   * Makes one version the active one of its name (also a rollback); the previous one is kept.
   * Changes to one tenant's adapters are serialised on its row, and the schema holds at most one
   * active row per name ({@code active_key}), whatever the database's isolation level.
   */
  @Transactional
  public Optional<AdapterVersion> activate(String tenantId, String name, int version) {
    lockTenant(tenantId);
    AdapterVersion target =
        first("tenantId = ?1 and name = ?2 and version = ?3", tenantId, name, version);
    if (target == null || target.status == AdapterVersion.Status.REJECTED) return Optional.empty();
    // The target is excluded: a bulk update bypasses the persistence context, so demoting it here
    // and then setting the same values on the managed entity would never be written back.
    db.createMutationQuery(
            "update AdapterVersion set status = ?1, activeKey = null where tenantId = ?2"
                + " and name = ?3 and status = ?4 and version <> ?5")
        .setParameter(1, AdapterVersion.Status.REGISTERED)
        .setParameter(2, tenantId)
        .setParameter(3, name)
        .setParameter(4, AdapterVersion.Status.ACTIVE)
        .setParameter(5, version)
        .executeUpdate();
    target.status = AdapterVersion.Status.ACTIVE;
    target.activeKey = tenantId + "/" + name;
    db.flush();
    epoch.bump();
    return Optional.of(target);
  }

  /**
   * Row lock on the tenant until the transaction ends: registrations and activations of one tenant
   * run one at a time (version numbers and the active pointer never race).
   */
  private void lockTenant(String tenantId) {
    db.createNativeQuery("select id from tenant where id = ?1 for update")
        .setParameter(1, tenantId)
        .getResultList();
  }

  /** The active version of a tenant's adapter. */
  @Transactional
  public Optional<AdapterVersion> active(String tenantId, String name) {
    return Optional.ofNullable(
        first(
            "tenantId = ?1 and name = ?2 and status = ?3",
            tenantId,
            name,
            AdapterVersion.Status.ACTIVE));
  }

  /** A specific servable version (registered or active). */
  @Transactional
  public Optional<AdapterVersion> version(String tenantId, String name, int version) {
    return Optional.ofNullable(
            first("tenantId = ?1 and name = ?2 and version = ?3", tenantId, name, version))
        .filter(
            v ->
                v.status == AdapterVersion.Status.ACTIVE
                    || v.status == AdapterVersion.Status.REGISTERED);
  }

  /** Active adapters of a tenant, by name. */
  @Transactional
  public List<AdapterVersion> activeAdapters(String tenantId) {
    return list(
        "tenantId = ?1 and status = ?2 order by name", tenantId, AdapterVersion.Status.ACTIVE);
  }

  @Transactional
  public Optional<AdapterBlob> blob(String digest) {
    return Optional.ofNullable(db.find(AdapterBlob.class, digest));
  }

  /** Every version of a tenant's adapters (all names when {@code name} is null), oldest first. */
  @Transactional
  public List<AdapterVersion> versions(String tenantId, String name) {
    return name == null
        ? list("tenantId = ?1 order by name, version", tenantId)
        : list("tenantId = ?1 and name = ?2 order by version", tenantId, name);
  }

  /** Outcome of a retirement request. */
  public enum Retire {
    RETIRED,
    NOT_FOUND,
    REFUSED_ACTIVE
  }

  /**
   * Retires a version so it is no longer served. The active version is refused unless forced, so a
   * tenant's adapter name never silently stops working.
   */
  @Transactional
  public Retire retire(String tenantId, String name, int version, boolean force) {
    lockTenant(tenantId);
    AdapterVersion v =
        first("tenantId = ?1 and name = ?2 and version = ?3", tenantId, name, version);
    if (v == null) return Retire.NOT_FOUND;
    if (v.status == AdapterVersion.Status.ACTIVE && !force) return Retire.REFUSED_ACTIVE;
    v.status = AdapterVersion.Status.RETIRED;
    v.activeKey = null;
    db.flush();
    epoch.bump();
    return Retire.RETIRED;
  }

  /** Keeps an operator-visible record of a refused adapter event. */
  @Transactional
  public void recordRejected(RejectedEvent e) {
    e.createdAt = Instant.now();
    db.persist(e);
  }

  /** The first version matching an HQL condition (positional parameters), or null. */
  private AdapterVersion first(String where, Object... params) {
    List<AdapterVersion> found = query(where, params).setMaxResults(1).getResultList();
    return found.isEmpty() ? null : found.get(0);
  }

  private List<AdapterVersion> list(String where, Object... params) {
    return query(where, params).getResultList();
  }

  private org.hibernate.query.SelectionQuery<AdapterVersion> query(String where, Object... params) {
    var q = db.createSelectionQuery("from AdapterVersion where " + where, AdapterVersion.class);
    for (int i = 0; i < params.length; i++) q.setParameter(i + 1, params[i]);
    return q;
  }
}
