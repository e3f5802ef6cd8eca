package dev.prefixgate.adapter;

import io.quarkus.hibernate.orm.panache.PanacheEntityBase;
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
public class AdapterVersion extends PanacheEntityBase {
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

  @Column(name = "base_model")
  public String baseModel;

  @Enumerated(EnumType.STRING)
  @Column(nullable = false)
  public Status status;

  /** Where it came from: upload, kafka, demo, retrain. */
  @Column(nullable = false)
  public String source;

  /** Training metrics as JSON, when known. */
  public String metrics;

  @Column(name = "created_at", nullable = false)
  public Instant createdAt;
}
