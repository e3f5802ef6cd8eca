package dev.prefixgate.retrain;

import io.quarkus.hibernate.orm.panache.PanacheEntityBase;
import jakarta.persistence.Column;
import jakarta.persistence.Entity;
import jakarta.persistence.Id;
import jakarta.persistence.Table;
import java.time.Instant;

/** One retraining request and what the trainer reported about it. */
@Entity
@Table(name = "training_job")
public class TrainingJob extends PanacheEntityBase {
  @Id public String id;

  @Column(name = "request_id", nullable = false, unique = true)
  public String requestId;

  @Column(name = "tenant_id", nullable = false)
  public String tenantId;

  @Column(name = "adapter_name", nullable = false)
  public String adapterName;

  @Column(name = "dataset_id", nullable = false)
  public String datasetId;

  /** Column size of {@code metrics}. */
  public static final int MAX_METRICS_CHARS = 16000;

  /**
   * queued, running, succeeded, not_activated (trained and registered, kept inactive by the quality
   * gate), failed.
   */
  @Column(nullable = false)
  public String state;

  @Column(nullable = false)
  public double progress;

  public Integer step;
  public Double loss;
  public String reason;
  public String digest;

  @Column(name = "adapter_version")
  public Integer adapterVersion;

  /** The trainer's held-out evaluation (JSON): eval losses, greedy samples, the gate's verdict. */
  public String metrics;

  @Column(name = "hyper_parameters")
  public String hyperParameters;

  @Column(name = "created_at", nullable = false)
  public Instant createdAt;

  @Column(name = "updated_at", nullable = false)
  public Instant updatedAt;
}
