package dev.prefixgate.adapter;

import jakarta.persistence.Column;
import jakarta.persistence.Entity;
import jakarta.persistence.GeneratedValue;
import jakarta.persistence.GenerationType;
import jakarta.persistence.Id;
import jakarta.persistence.Table;
import java.time.Instant;

/** An adapter event that was refused; never served. */
@Entity
@Table(name = "rejected_event")
public class RejectedEvent {
  @Id
  @GeneratedValue(strategy = GenerationType.IDENTITY)
  public Long id;

  @Column(name = "event_id")
  public String eventId;

  @Column(name = "tenant_id")
  public String tenantId;

  @Column(name = "adapter_name")
  public String adapterName;

  @Column(nullable = false)
  public String topic;

  @Column(name = "kafka_partition", nullable = false)
  public int partition;

  @Column(name = "kafka_offset", nullable = false)
  public long offset;

  public String field;

  @Column(nullable = false)
  public String reason;

  @Column(name = "created_at", nullable = false)
  public Instant createdAt;
}
