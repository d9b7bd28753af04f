"""The OLAP layer: dbt marts on ClickHouse and their data-quality suites."""
