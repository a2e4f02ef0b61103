"""cinestrain dicom_io package."""
