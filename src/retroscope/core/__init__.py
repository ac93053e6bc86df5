"""retroscope.core"""
