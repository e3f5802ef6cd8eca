package dev.prefixgate.adapter;

import jakarta.persistence.Column;
import jakarta.persistence.Entity;
import jakarta.persistence.EnumType;
import jakarta.persistence.Enumerated;
import jakarta.persistence.GeneratedValue;
import jakarta.persistence.GenerationType;
import jakarta.persistence.Id;
import jakarta.persistence.Table;
import java.time.Instant;

/** One version of a tenant's named adapter. */
@Entity
@Table(name = "adapter")
public class AdapterVersion {
  public enum Status {
    REGISTERED,
    ACTIVE,
    RETIRED,
    REJECTED
  }

  @Id
  @GeneratedValue(strategy = GenerationType.IDENTITY)
  public Long id;

  @Column(name = "tenant_id", nullable = false)
  public String tenantId;

  @Column(nullable = false)
  public String name;

  @Column(nullable = false)
  public int version;

  @Column(nullable = false)
  public String digest;

  @Column(name = "num_virtual_tokens", nullable = false)
  public int numVirtualTokens;

  /** The served base model's configured name when this version was registered. */
  @Column(name = "base_model")
  public String baseModel;

  /** That base model's {@link dev.prefixgate.engine.ModelFingerprint}. */
  @Column(name = "base_fingerprint")
  public String baseFingerprint;

  @Enumerated(EnumType.STRING)
  @Column(nullable = false)
  public Status status;

  /** Where it came from: upload, kafka, demo, retrain. */
  @Column(nullable = false)
  public String source;

  /** Who sent it (an event's producer, "admin", "demo"); null before V7. */
  public String producer;

  /** {@code tenant/name} while this version is the active one, else null (unique: one active). */
  @Column(name = "active_key")
  public String activeKey;

  /** Training metrics as JSON (held-out eval losses, samples, the gate's verdict), when known. */
  public String metrics;

  @Column(name = "created_at", nullable = false)
  public Instant createdAt;
}
