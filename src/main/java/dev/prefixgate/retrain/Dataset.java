package dev.prefixgate.retrain;

import jakarta.persistence.Basic;
import jakarta.persistence.Column;
import jakarta.persistence.Entity;
import jakarta.persistence.FetchType;
import jakarta.persistence.Id;
import jakarta.persistence.Table;
import java.time.Instant;

/** A tenant's training data: JSONL of instruction/input/output records. */
@Entity
@Table(name = "dataset")
public class Dataset {
  @Id public String id;

  @Column(name = "tenant_id", nullable = false)
  public String tenantId;

  @Column(nullable = false)
  public String name;

  @Column(nullable = false)
  public String digest;

  @Column(nullable = false)
  public int records;

  @Column(nullable = false)
  // Lazy (Quarkus enhances entities): listing data sets must not load every body.
  @Basic(fetch = FetchType.LAZY)
  public byte[] content;

  @Column(name = "created_at", nullable = false)
  public Instant createdAt;
}
