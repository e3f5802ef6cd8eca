package dev.prefixgate.adapter;

import jakarta.persistence.Column;
import jakarta.persistence.Entity;
import jakarta.persistence.Id;
import jakarta.persistence.Table;
import java.time.Instant;

/** The two PEFT files of an adapter, keyed by the sha256 of the safetensors bytes. */
@Entity
@Table(name = "adapter_blob")
public class AdapterBlob {
  @Id public String digest;

  @Column(name = "adapter_config", nullable = false)
  public byte[] adapterConfig;

  @Column(name = "safetensors", nullable = false)
  public byte[] safetensors;

  @Column(name = "created_at", nullable = false)
  public Instant createdAt;
}
