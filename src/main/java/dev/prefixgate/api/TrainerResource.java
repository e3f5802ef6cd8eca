package dev.prefixgate.api;

import dev.prefixgate.retrain.Datasets;
import jakarta.inject.Inject;
import jakarta.transaction.Transactional;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;

/**
 * What a trainer worker may read, with the trainer key ({@link AdminAuth}): the data set a retrain
 * request names, by tenant and id. The worker builds this address from its own configuration and
 * never follows a URL found in a request, so no credential leaves for an address a producer chose.
 */
@Path("/trainer/tenants/{tenant}/datasets/{id}")
public class TrainerResource {
  @Inject Datasets datasets;

  @GET
  @Produces("application/x-ndjson")
  @Transactional // the body is loaded lazily
  public byte[] dataset(@PathParam("tenant") String tenant, @PathParam("id") String id) {
    return datasets
        .find(tenant, id)
        .map(d -> d.content)
        .orElseThrow(() -> ApiError.notFound("dataset '" + id + "' of tenant '" + tenant + "'"));
  }
}
