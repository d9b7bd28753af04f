-- The calendar: one row per day from `calendar_start` for `calendar_years` years.

with

days as (
    select toDate('{{ var("calendar_start") }}') + number as date_day
    from numbers(
        toUInt64(dateDiff('day', toDate('{{ var("calendar_start") }}'),
            addYears(toDate('{{ var("calendar_start") }}'), {{ var("calendar_years") }})))
    )
)

select
    date_day,
    toYear(date_day) as year,
    toQuarter(date_day) as quarter,
    toMonth(date_day) as month,
    monthName(date_day) as month_name,
    toISOWeek(date_day) as iso_week,
    toDayOfMonth(date_day) as day_of_month,
    toDayOfWeek(date_day) as day_of_week,
    dateName('weekday', date_day) as day_name,
    toDayOfWeek(date_day) >= 6 as is_weekend,
    toStartOfMonth(date_day) as month_start,
    toStartOfWeek(date_day, 1) as week_start
from days
