from __future__ import annotations

from django.urls import path

from pipelines.api import views

urlpatterns = [
    path("health", views.HealthView.as_view(), name="health"),
    path("sync/pipelines", views.PipelineListView.as_view(), name="pipeline-list"),
    path("sync/pipelines/bulk", views.PipelineBulkView.as_view(), name="pipeline-bulk"),
    path("sync/pipelines/<uuid:pipeline_id>", views.PipelineDetailView.as_view(), name="pipeline-detail"),
    path("sync/pipelines/<uuid:pipeline_id>/stream", views.PipelineStreamView.as_view(), name="pipeline-stream"),
    path("sync/pipelines/<uuid:pipeline_id>/abort", views.PipelineAbortView.as_view(), name="pipeline-abort"),
    path("sync/pipelines/<uuid:pipeline_id>/retry", views.PipelineRetryView.as_view(), name="pipeline-retry"),
    path("sync/jobs/<int:job_id>", views.JobDetailView.as_view(), name="job-detail"),
    path("sync/jobs/<int:job_id>/recover", views.JobRecoverView.as_view(), name="job-recover"),
    path("sync/workers", views.WorkersView.as_view(), name="workers"),
    path("sync/active-pipelines", views.ActivePipelinesView.as_view(), name="active-pipelines"),
    path("sync/active-pipelines/year/<int:year>", views.ActiveYearPipelinesView.as_view(), name="active-year"),
]
