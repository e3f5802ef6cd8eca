package dev.prefixgate.api;

import dev.prefixgate.adapter.RejectedEvent;
import jakarta.inject.Inject;
import jakarta.transaction.Transactional;
import jakarta.ws.rs.DefaultValue;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.core.MediaType;
import java.time.Instant;
import java.util.List;
import org.hibernate.Session;

/** Adapter events this gateway refused (also on the dead-letter topic), newest first. */
@Path("/admin/events/rejected")
@Produces(MediaType.APPLICATION_JSON)
public class AdminEventsResource {
  static final int MAX_LIMIT = 1000;

  @Inject Session db;

  public record RejectedView(
      long id,
      String eventId,
      String tenant,
      String adapter,
      String topic,
      int partition,
      long offset,
      String field,
      String reason,
      Instant createdAt) {
    static RejectedView of(RejectedEvent e) {
      return new RejectedView(
          e.id,
          e.eventId,
          e.tenantId,
          e.adapterName,
          e.topic,
          e.partition,
          e.offset,
          e.field,
          e.reason,
          e.createdAt);
    }
  }

  @GET
  @Transactional
  public List<RejectedView> list(@QueryParam("limit") @DefaultValue("100") int limit) {
    if (limit < 1 || limit > MAX_LIMIT) {
      throw ApiError.invalid("limit", "limit must be 1.." + MAX_LIMIT + ", got " + limit);
    }
    return db
        .createSelectionQuery("from RejectedEvent order by id desc", RejectedEvent.class)
        .setMaxResults(limit)
        .getResultList()
        .stream()
        .map(RejectedView::of)
        .toList();
  }
}
