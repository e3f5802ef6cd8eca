package dev.prefixgate.tenant;

import jakarta.persistence.Column;
import jakarta.persistence.Entity;
import jakarta.persistence.Id;
import jakarta.persistence.Table;
import java.time.Instant;

/** A tenant's API key, stored as sha256 only. */
@Entity
@Table(name = "api_key")
public class ApiKey {
  @Id public String id;

  @Column(name = "tenant_id", nullable = false)
  public String tenantId;

  @Column(name = "key_hash", nullable = false, unique = true)
  public String keyHash;

  /** First characters of the key, to recognise it in listings. */
  @Column(name = "key_prefix", nullable = false)
  public String keyPrefix;

  @Column(name = "created_at", nullable = false)
  public Instant createdAt;

  @Column(name = "revoked_at")
  public Instant revokedAt;
}
