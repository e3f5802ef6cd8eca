package dev.prefixgate.api;

import com.fasterxml.jackson.databind.JsonNode;
import dev.prefixgate.retrain.RetrainRequests;
import dev.prefixgate.retrain.TrainingJob;
import jakarta.inject.Inject;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import java.time.Instant;

/** Retraining jobs (started with {@code POST /admin/tenants/{id}/retrain}). */
@Path("/admin/jobs")
@Produces(MediaType.APPLICATION_JSON)
public class AdminJobsResource {
  @Inject RetrainRequests retrain;

  public record JobView(
      String id,
      String requestId,
      String tenant,
      String adapter,
      String datasetId,
      String state,
      double progress,
      Integer step,
      Double loss,
      String reason,
      Integer adapterVersion,
      String digest,
      JsonNode metrics,
      Instant createdAt,
      Instant updatedAt) {
    static JobView of(TrainingJob j) {
      return new JobView(
          j.id,
          j.requestId,
          j.tenantId,
          j.adapterName,
          j.datasetId,
          j.state.wire(),
          j.progress,
          j.step,
          j.loss,
          j.reason,
          j.adapterVersion,
          j.digest,
          Json.tree(j.metrics),
          j.createdAt,
          j.updatedAt);
    }
  }

  @GET
  @Path("/{id}")
  public JobView job(@PathParam("id") String id) {
    TrainingJob job = retrain.job(id).orElseThrow(() -> ApiError.notFound("job '" + id + "'"));
    retrain.resolveVersion(job);
    return JobView.of(job);
  }
}
