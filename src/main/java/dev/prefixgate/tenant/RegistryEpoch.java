package dev.prefixgate.tenant;

import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Event;
import jakarta.inject.Inject;
import org.hibernate.Session;

/**
 * The registry's change counter ({@code registry_epoch}). Every transaction that changes what is
 * served (tenants, keys, adapter versions) calls {@link #bump()} as its last write; serving
 * directories on every replica poll {@link #current()} and reload when it moved.
 */
@ApplicationScoped
public class RegistryEpoch {
  @Inject Event<RegistryChanged> changed;
  @Inject Session db;

  /**
   * Increments the counter in the caller's transaction (its row lock also orders concurrent
   * changes) and tells this replica's directory to reload once the transaction commits. Call it
   * after the transaction's other writes, so locks are always taken in the same order.
   */
  public void bump() {
    db.createNativeQuery("update registry_epoch set epoch = epoch + 1 where id = 1")
        .executeUpdate();
    changed.fire(new RegistryChanged());
  }

  /** The counter now; needs a transaction. */
  public long current() {
    return ((Number)
            db.createNativeQuery("select epoch from registry_epoch where id = 1").getSingleResult())
        .longValue();
  }
}
