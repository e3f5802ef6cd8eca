package dev.prefixgate.retrain;

import jakarta.persistence.Column;
import jakarta.persistence.Entity;
import jakarta.persistence.Id;
import jakarta.persistence.Table;
import java.time.Instant;

/** One retraining request and what the trainer reported about it. */
@Entity
@Table(name = "training_job")
public class TrainingJob {
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

  /** A job's state, stored (and shown) as the training-status schema's lower-case word. */
  public enum State {
    QUEUED,
    RUNNING,
    SUCCEEDED,
    /** Trained and registered, kept inactive by the quality gate. */
    NOT_ACTIVATED,
    FAILED;

    /** The schema's word: {@code not_activated}. */
    public String wire() {
      return name().toLowerCase(java.util.Locale.ROOT);
    }

    /** From the schema's word; the schema check has already refused anything else. */
    public static State ofWire(String word) {
      return valueOf(word.toUpperCase(java.util.Locale.ROOT));
    }

    public boolean isFinal() {
      return this == SUCCEEDED || this == NOT_ACTIVATED || this == FAILED;
    }
  }

  /** Keeps the column's values as they were written before the enum: the lower-case words. */
  @jakarta.persistence.Converter
  public static class StateColumn implements jakarta.persistence.AttributeConverter<State, String> {
    @Override
    public String convertToDatabaseColumn(State s) {
      return s == null ? null : s.wire();
    }

    @Override
    public State convertToEntityAttribute(String word) {
      return word == null ? null : State.ofWire(word);
    }
  }

  @Column(nullable = false)
  @jakarta.persistence.Convert(converter = StateColumn.class)
  public State state;

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
