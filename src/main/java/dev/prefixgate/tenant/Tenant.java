package dev.prefixgate.tenant;

import jakarta.persistence.Column;
import jakarta.persistence.Entity;
import jakarta.persistence.Id;
import jakarta.persistence.Table;
import java.time.Instant;

/** A customer of the gateway: owns API keys and adapters. */
@Entity
@Table(name = "tenant")
public class Tenant {
  /** Tenant ids, and adapter names: lower case, digits, '_' and '-', at most 64, not '-' first. */
  public static final java.util.regex.Pattern ID =
      java.util.regex.Pattern.compile("[a-z0-9][a-z0-9_-]{0,63}");

  @Id public String id;

  @Column(name = "display_name", nullable = false)
  public String displayName;

  /** Adapter name used when a request names no model; null means the base model. */
  @Column(name = "default_adapter")
  public String defaultAdapter;

  /** Whether this tenant may call the bare base model. */
  @Column(name = "allow_base", nullable = false)
  public boolean allowBase;

  @Column(name = "created_at", nullable = false)
  public Instant createdAt;
}
