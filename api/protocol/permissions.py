"""MODIFYROLEPERMISSION's PERMISSIONNAME values: the manual's whole table, as it spells them.

The manual misspells a few (ALLWSURVEY..., EMPLOYEEESCHEDULE...); those spellings are what
clients copied from it, so they are the names. The corrected spellings are accepted too and
stored under the manual's.
"""

from __future__ import annotations

# API name -> how the Discover Web Portal lists the permission.
PERMISSIONS: dict[str, str] = {
    "ALLOWCHANGEPASSWORD": "Allow Password Changes",
    "ALLOWQAVIEW": "Allow Viewing of QA Evaluations",
    "CALLREPORTING": "Allow Viewing Call Reports",
    "QAREPORTING": "Allow Viewing QA Reports",
    "VIEWOWNRECORDS": "Allow Viewing of User's Own Records",
    "ALLOWAGENTADMIN": "Allow User Administration",
    "ALLOWAPIAUTH": "Allow API Authentication",
    "ALLOWARCHIVEADMIN": "Allow Archive Administration",
    "ALLOWCOMMENT": "Allow Bookmarking",
    "ALLOWEDITCOMPLETEDQA": "Allow Editing of Completed QA Evaluations",
    "ALLOWEXPORTDOWNLOAD": "Allow Downloading of Export",
    "ALLOWEXPORTEMAIL": "Allow Emailing of Export",
    "ALLOWFILEDELETE": "Allow Recording Record and File Deletes",
    "ALLOWGROUPADMIN": "Allow Group Administration",
    "ALLOWLIVEMONITOR": "Allow Live Monitoring of Calls",
    "ALLOWQAEDIT": "Allow QA Form Administration",
    "ALLOWQADELETE": "Allow Deletion of Completed QA Evaluations",
    "ALLOWSYSTEMCONFIG": "Allow System Configuration",
    "ALLOWSYSTEMREPORTS": "Allow Viewing System Reports",
    "ALLOWVIEWALLRECORDS": "Allow Viewing All Call Records & QA Evaluations",
    "AUDITREPORTING": "Allow Viewing Audit Reports",
    "CONTENTUPLOAD": "Allow Content Library Management",
    "REPORTSUBSCRIPTION": "Allow Report Subscriptions",
    "ALLOWWIDGETADMINISTRATION": "Allow Widget Administration",
    # inContact Screen Recording
    "ALLOWVIEWVIDEO": "Allow Viewing of Video",
    # inContact On-Demand
    "ALLOWBLACKOUT": "Allow Blackout Start and Stop",
    "ALLOWRECORDINGALIAS": "Allow Recording by Device Alias",
    "ALLOWRECORDDESKTOP": "Allow Desktop Recording",
    "ALLOWRECORDID": "Allow Recording by Device ID",
    "ALLOWRECORDSTOP": "Allow Recording Stop",
    "ALLOWUPDATEAUDIO": "Allow Call Updates",
    "PROMPTID": "Prompt for Device at Login",
    "SECUREALL": "Prevent Settings Changes",
    "SECUREID": "Prevent Device ID Changes",
    "ALLOWWEBONDEMAND": "Allow Web On Demand",
    # inContact Speech Analytics
    "ANALYTICSREPORTING": "Allow Viewing Analytics Reports",
    "ALLOWVIEWANALYTICS": "Allow Analytics View",
    "ALLOWANALYTICSADMIN": "Allow Analytics Administration",
    # inContact Survey
    "SURVEYREPORTING": "Allow Viewing Survey Reports",
    "ALLWSURVEYEDIT": "Allow Editing Surveys",
    "ALLWSURVEYADMIN": "Allow Survey Administration",
    "ALLWSURVEYDELETE": "Allow Deleting Surveys",
    "ALLWSURVEYVIEW": "Allow Viewing Surveys",
    # inContact Desktop Analytics
    "ALLOWFUSIONADMIN": "Allow Fusion Administration",
    # inContact WFM v1
    "CONFIGURATIONSECTION": "Configuration Section",
    "EDITNEWSWIDGET": "Edit News Widget",
    "EMPLOYEECREATE": "Employee Create",
    "EMPLOYEEPROFILEALLVIEW": "Employee Profile All View",
    "EMPLOYEEPROFILETEAMVIEW": "Employee Profile Team View",
    "EMPLOYEEESCHEDULEALLEEDIT": "Employee Schedule All Edit",
    "EMPLOYEEESCHEDULEALLVIEW": "Employee Schedule All View",
    "EMPLOYEEESCHEDULETEAMEDIT": "Employee Schedule Team Edit",
    "EMPLOYEEESCHEDULETEAMVIEW": "Employee Schedule Team View",
    "EMPLOYEESEARCH": "Employee Search",
    "EMPLOYEESECTION": "Employee Section",
    "EMPLOYEESELFEDIT": "Employee Self Edit",
    "FORECASTACQUIRE": "Forecast Acquire",
    "FORECASTPREDICT": "Forecast Predict",
    "FORECASTSECTION": "Forecast Section",
    "FORECASTTREND": "Forecast Trend",
    "HISTORICALWIDGETS": "Historical Widgets",
    "HOMEPAGEWIDGETS": "Home Page Widgets",
    "LEAVEREQUESTAPPROVALALL": "Leave Request Approval All",
    "LEAVEREQUESTAPPROVALTEAM": "Leave Request Approval Team",
    "REALTIMEWIDGETS": "Real Time Widgets",
    "REPORTSHISTORICAL": "Reports Historical",
    "REPORTSPROCESSES": "Reports Processes",
    "REPORTSREALTIME": "Reports Real Time",
    "REPORTSSECTION": "Reports Section",
    "ROSTERALL": "Roster All",
    "ROSTERTEAM": "Roster Team",
    "SCHEDULECREATE": "Schedule Create",
    "SCHEDULELOAD": "Schedule Load",
    "SCHEDULEPUBLISH": "Schedule Publish",
    "SCHEDULESECTION": "Schedule Section",
    "SWAPREQUESTAPPROVALALL": "Swap Request Approval All",
    "SWAPREQUESTAPPROVALTEAM": "Swap Request Approval Team",
}

# Corrected spellings of the manual's misspelled names.
CORRECTED: dict[str, str] = {
    "ALLOWSURVEYEDIT": "ALLWSURVEYEDIT",
    "ALLOWSURVEYADMIN": "ALLWSURVEYADMIN",
    "ALLOWSURVEYDELETE": "ALLWSURVEYDELETE",
    "ALLOWSURVEYVIEW": "ALLWSURVEYVIEW",
    "EMPLOYEESCHEDULEALLEDIT": "EMPLOYEEESCHEDULEALLEEDIT",
    "EMPLOYEESCHEDULEALLVIEW": "EMPLOYEEESCHEDULEALLVIEW",
    "EMPLOYEESCHEDULETEAMEDIT": "EMPLOYEEESCHEDULETEAMEDIT",
    "EMPLOYEESCHEDULETEAMVIEW": "EMPLOYEEESCHEDULETEAMVIEW",
}

# A permission that cannot be granted unless the role also has another (the manual: "cannot be
# granted unless user also has Allow Viewing of QA Evaluations/ALLOWQAVIEW").
REQUIRES: dict[str, str] = {"ALLOWQAEDIT": "ALLOWQAVIEW"}


def permission_name(text: str) -> str | None:
    """The manual's name for ``text`` (any case, either spelling), or None if it is none."""
    name = text.strip().upper()
    name = CORRECTED.get(name, name)
    return name if name in PERMISSIONS else None
