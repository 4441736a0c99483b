"""Fixtures shared by integration tests: the driver conformance cases of every stack, and the
database servers."""

from archive_stack_support import archive_driver_case
from database_servers import mariadb_server, postgres_server
from docker_stack_support import docker_driver_case, docker_web_images
from node_stack_support import node_app, node_app_template, node_driver_case
from python_stack_support import python_driver_case, wagtail_site, wagtail_template
from wordpress_stack_support import wordpress_driver_case

__all__ = [
    "archive_driver_case",
    "docker_driver_case",
    "docker_web_images",
    "mariadb_server",
    "node_app",
    "node_app_template",
    "node_driver_case",
    "postgres_server",
    "python_driver_case",
    "wagtail_site",
    "wagtail_template",
    "wordpress_driver_case",
]
