package dev.prefixgate.tenant;

import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Event;
import jakarta.inject.Inject;
import jakarta.transaction.Transactional;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Instant;
import java.util.HexFormat;
import java.util.Optional;
import java.util.UUID;
import org.hibernate.Session;

/** Tenants and their API keys. Blocking (Hibernate ORM): call from worker threads. */
@ApplicationScoped
public class Tenants {
  private static final SecureRandom RANDOM = new SecureRandom();

  @Inject Event<TenantCreated> created;
  @Inject RegistryEpoch epoch;
  @Inject Session db;

  /** A newly issued key: the only time its plain text exists. */
  public record IssuedKey(String id, String key, String prefix) {}

  /** The tenant a bearer key belongs to, if the key exists and is not revoked. */
  @Transactional
  public Optional<Tenant> authenticate(String key) {
    if (key == null || key.isEmpty()) return Optional.empty();
    ApiKey k = byHash(hash(key));
    if (k == null || k.revokedAt != null) return Optional.empty();
    return Optional.ofNullable(db.find(Tenant.class, k.tenantId));
  }

  @Transactional
  public Optional<Tenant> find(String id) {
    return Optional.ofNullable(db.find(Tenant.class, id));
  }

  /** Creates a tenant unless it exists; returns the stored tenant either way. */
  @Transactional
  public Tenant ensure(String id, String displayName, String defaultAdapter, boolean allowBase) {
    Tenant t = db.find(Tenant.class, id);
    if (t != null) return t;
    t = new Tenant();
    t.id = id;
    t.displayName = displayName;
    t.defaultAdapter = defaultAdapter;
    t.allowBase = allowBase;
    t.createdAt = Instant.now();
    db.persist(t);
    epoch.bump();
    created.fire(new TenantCreated(id));
    return t;
  }

  /** Issues a new random key for a tenant. */
  @Transactional
  public IssuedKey issueKey(String tenantId) {
    byte[] raw = new byte[24];
    RANDOM.nextBytes(raw);
    return storeKey(tenantId, "pg-" + HexFormat.of().formatHex(raw));
  }

  /** Stores a caller-chosen key (the demo's documented keys) unless it is already stored. */
  @Transactional
  public IssuedKey storeKey(String tenantId, String key) {
    ApiKey existing = byHash(hash(key));
    if (existing != null) return new IssuedKey(existing.id, key, existing.keyPrefix);
    ApiKey k = new ApiKey();
    k.id = UUID.randomUUID().toString();
    k.tenantId = tenantId;
    k.keyHash = hash(key);
    k.keyPrefix = key.substring(0, Math.min(8, key.length()));
    k.createdAt = Instant.now();
    db.persist(k);
    db.flush();
    epoch.bump();
    return new IssuedKey(k.id, key, k.keyPrefix);
  }

  private ApiKey byHash(String keyHash) {
    return db.createSelectionQuery("from ApiKey where keyHash = ?1", ApiKey.class)
        .setParameter(1, keyHash)
        .uniqueResult();
  }

  /** How keys are stored (and looked up): sha256 of the key's UTF-8 bytes, hex. */
  public static String hash(String key) {
    try {
      return HexFormat.of()
          .formatHex(
              MessageDigest.getInstance("SHA-256").digest(key.getBytes(StandardCharsets.UTF_8)));
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException("every JVM has SHA-256", e);
    }
  }
}
